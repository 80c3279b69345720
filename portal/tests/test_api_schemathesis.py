"""Schemathesis against /api/schema/, as each kind of caller: no 5xx, responses conform to the schema.

Runs through the WSGI app in the test's own transaction, so the callers and their data are visible
without a live server. Bounded to a few examples per operation to stay well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mdms.core.api_tokens import api_token_issue
from portal.api.testing import make_owned, rest_settings

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 5
# Errors are documented too (portal.api.schema), so every status and body is checked.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    """The WSGI handler closes the database connection after each request, which would end the
    test's transaction; Django's own test client switches this off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _session_headers(client: Any, user: Any) -> dict[str, str]:
    client.force_login(user)
    csrf = "c" * 32
    cookie = f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf}"
    return {"Cookie": cookie, "X-CSRFToken": csrf}


def _run(schema: Any, headers: dict[str, str]) -> int:
    """Every operation, a few generated cases each; returns how many requests were made."""
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            nonlocal calls
            response = case.call(headers=headers)
            calls += 1
            case.validate_response(response, checks=CHECKS)

        check()
    return calls


@pytest.mark.parametrize("role", ["consumer", "operator", "billing", "cis_token", "billing_token", "admin_token"])
def test_no_5xx_and_responses_conform_to_the_schema(
    role: str, client: Any, alice: Any, bob: Any, olivia: Any, bill: Any, mongo: Any
) -> None:
    make_owned(alice)
    make_owned(bob)
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    tokens = {"cis_token": "cis_read", "billing_token": "billing", "admin_token": "meter_admin"}
    if role in tokens:
        key = api_token_issue(name=role, scopes=[tokens[role]]).key
        headers = {"Authorization": f"Bearer {key}"}
    else:
        headers = _session_headers(client, {"consumer": alice.user, "operator": olivia, "billing": bill}[role])
    assert _run(schema, headers) > 20
