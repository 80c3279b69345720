"""Who may see and do what through the API: the BOLA matrix (built from the schema), scopes, auth."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rest_framework.test import APIClient

from mdms.core.models import AuditLog, Meter
from portal.api.testing import make_owned, rest_settings, session_client, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


@pytest.fixture
def schema_paths(alice: Any) -> dict[str, dict[str, Any]]:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths: dict[str, dict[str, Any]] = response.json()["paths"]
    return paths


def _resource(path: str) -> str:
    return path.removeprefix("/api/v1/").split("/")[0]


def test_every_route_with_an_id_answers_404_to_another_consumers_object(
    alice: Any, bob: Any, schema_paths: dict[str, dict[str, Any]]
) -> None:
    bobs = make_owned(bob)
    client = session_client(alice.user)
    checked = []
    for path, operations in schema_paths.items():
        if "{" not in path:
            continue
        resource = _resource(path)
        assert resource in bobs.ids, f"{path}: the BOLA matrix does not know which object of bob's to try"
        url = re.sub(r"\{[^}]+\}", str(bobs.ids[resource]), path)
        for method in operations:
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
            assert response.json()["error"]["code"] == "not_found"
            checked.append(f"{method} {path}")
    assert len(checked) >= 10  # meters, their readings/events/anomalies/disable/enable, and the rest


def test_every_list_holds_only_the_consumers_own_objects(
    alice: Any, bob: Any, schema_paths: dict[str, dict[str, Any]]
) -> None:
    make_owned(alice)
    bobs = make_owned(bob)
    client = session_client(alice.user)
    lists = [path for path, operations in schema_paths.items() if "{" not in path and "get" in operations]
    assert len(lists) >= 8
    for path in lists:
        response = client.get(path, {"date": "2026-11-01"})
        assert response.status_code in (200, 403), f"{path}: {response.status_code}"
        text = response.content.decode()
        for marker in bobs.markers:
            assert marker not in text, f"{path} shows bob's {marker}"
    assert alice.meter.serial in client.get("/api/v1/meters/").content.decode()


def test_ids_in_the_query_string_do_not_reach_other_consumers_objects(alice: Any, bob: Any) -> None:
    client = session_client(alice.user)
    assert client.get("/api/v1/accounts/", {"customer": bob.customer.pk}).json()["results"] == []
    assert client.get("/api/v1/meters/", {"premise": bob.account.premise_id}).json()["results"] == []
    assert client.get("/api/v1/bills/", {"account": bob.account.number}).json()["results"] == []


def test_a_consumer_cannot_disable_their_own_meter(alice: Any) -> None:
    response = session_client(alice.user).post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    alice.meter.refresh_from_db()
    assert alice.meter.status == Meter.Status.ACTIVE


def test_a_read_only_cis_token_cannot_disable_a_meter_or_request_a_read(alice: Any) -> None:
    client = token_client("cis_read")
    assert client.get(f"/api/v1/meters/{alice.meter.pk}/").status_code == 200
    assert client.post(f"/api/v1/meters/{alice.meter.pk}/disable/").status_code == 403
    response = client.post("/api/v1/reads/", {"meter": alice.meter.serial}, format="json")
    assert response.status_code == 403
    alice.meter.refresh_from_db()
    assert alice.meter.status == Meter.Status.ACTIVE
    assert not AuditLog.objects.filter(action__in=["meter_disable", "on_demand_read"]).exists()


def test_a_meter_admin_token_disables_and_enables_a_meter_and_both_are_audited(alice: Any) -> None:
    client = token_client("meter_admin", name="head-end")
    response = client.post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert response.status_code == 200
    assert response.json()["status"] == "disabled"
    assert client.post(f"/api/v1/meters/{alice.meter.pk}/enable/").json()["status"] == "active"
    rows = list(AuditLog.objects.order_by("id").values_list("actor_label", "action", "target"))
    assert rows[-2:] == [
        ("token:head-end", "meter_disable", f"meter:{alice.meter.serial}"),
        ("token:head-end", "meter_enable", f"meter:{alice.meter.serial}"),
    ]


def test_a_billing_token_requests_a_read_and_the_request_is_audited(alice: Any) -> None:
    client = token_client("billing", name="sap")
    response = client.post("/api/v1/reads/", {"meter": alice.meter.serial, "purpose": "move_out"}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    status = client.get(f"/api/v1/reads/{response.json()['id']}/").json()
    assert status["meter"] == alice.meter.serial
    assert AuditLog.objects.filter(action="on_demand_read", actor_label="token:sap").count() == 1


def test_a_revoked_or_unknown_token_is_refused_with_401(alice: Any) -> None:
    from mdms.core.api_tokens import api_token_issue, api_token_revoke

    issued = api_token_issue(name="old", scopes=["cis_read"])
    api_token_revoke(token=issued.token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    response = client.get("/api/v1/meters/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "authentication_failed"
    assert APIClient().get("/api/v1/meters/").status_code == 401


def test_session_writes_need_the_csrf_token(olivia: Any, alice: Any) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(olivia)
    response = client.post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    # The portal's pages set this cookie; the JavaScript sends it back as X-CSRFToken.
    secret = "a" * 32
    client.cookies["csrftoken"] = secret
    response = client.post(f"/api/v1/meters/{alice.meter.pk}/disable/", HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 200


def test_a_token_without_the_scope_gets_a_403_that_names_the_scope_needed(alice: Any) -> None:
    response = token_client("cis_read").get("/api/v1/determinants/", {"date": "2026-11-01"})
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "'billing'" in message and "'cis_read'" in message


def test_tokens_are_stored_hashed_and_shown_once(db: None) -> None:
    from mdms.core.api_tokens import api_token_issue
    from mdms.core.models import ApiToken

    issued = api_token_issue(name="cis", scopes=["cis_read"])
    stored = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.key not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64
    assert AuditLog.objects.filter(action="token_issue", target=f"token:{stored.pk}").exists()
