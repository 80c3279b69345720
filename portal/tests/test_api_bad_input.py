"""Input a CIS developer or a fuzzer sends by mistake: always a 400 in the one error shape, never a 500,
and never silently ignored (issue 14, items 3 and 4)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from mdms.core.models import Meter
from portal.api.testing import rest_settings, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


def _error(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    return body["error"]  # type: ignore[no-any-return]


def _client() -> APIClient:
    return token_client("cis_read", "billing", "meter_admin")


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_determinants_for_the_first_day_of_year_one_is_a_400(alice: Any) -> None:
    error = _error(_client().get("/api/v1/determinants/", {"date": "0001-01-01"}))
    assert error["field"] == "date"


@pytest.mark.parametrize("path", ["/api/v1/reads/", "/api/v1/meters/"])
def test_json_nested_five_thousand_deep_is_a_400(alice: Any, path: str) -> None:
    client = _client()
    for body in (_nested(5000), '{"serial": ' + _nested(5000) + "}", '{"a":' * 5000 + "1" + "}" * 5000):
        error = _error(client.post(path, body, content_type="application/json"))
        assert error["code"] == "parse_error"
        assert "nested" in error["message"]


def test_json_nested_moderately_deep_is_refused_too(alice: Any) -> None:
    client = _client()
    error = _error(client.post("/api/v1/meters/", '{"serial": ' + _nested(500) + "}", content_type="application/json"))
    assert error["code"] == "parse_error"


def test_a_meter_installed_in_2099_is_refused(alice: Any) -> None:
    client = _client()
    response = client.post("/api/v1/meters/", {"serial": "FUTURE-1", "install_date": "2099-01-01"}, format="json")
    error = _error(response)
    assert error["field"] == "install_date"
    assert not Meter.objects.filter(serial="FUTURE-1").exists()


def test_page_size_null_is_a_400_naming_it(alice: Any) -> None:
    client = _client()
    for value in ("null", "", "-3", "abc"):
        error = _error(client.get("/api/v1/meters/", {"page_size": value}))
        assert error["field"] == "page_size"
    assert client.get("/api/v1/meters/", {"page_size": "5"}).status_code == 200


def test_an_empty_started_from_is_a_400(alice: Any) -> None:
    error = _error(_client().get("/api/v1/incidents/", {"started_from": ""}))
    assert error["field"] == "started_from"


def test_a_bad_started_from_names_started_from_not_started_at(alice: Any) -> None:
    client = _client()
    for value in ("0001-01-01T00:00:00+05:00", "yesterday"):
        error = _error(client.get("/api/v1/incidents/", {"started_from": value}))
        assert error["field"] == "started_from"
        assert "started_at" not in error["message"]


def test_unknown_filters_are_a_400_naming_them(alice: Any) -> None:
    client = _client()
    for path in ("/api/v1/meters/", "/api/v1/bills/", "/api/v1/incidents/", "/api/v1/reads/"):
        error = _error(client.get(path, {"serail": "MTR000001"}))
        assert error["field"] == "serail"
        assert error["code"] == "unknown_parameter"
    assert client.get("/api/v1/meters/", {"serial": alice.meter.serial, "page": 1}).status_code == 200


def test_unknown_ordering_values_are_a_400(alice: Any) -> None:
    client = _client()
    error = _error(client.get("/api/v1/bills/", {"ordering": "password"}))
    assert error["field"] == "ordering"
    error = _error(client.get("/api/v1/incidents/", {"ordering": "started_at,-nope"}))
    assert error["field"] == "ordering"
    assert "nope" in error["message"]
    assert client.get("/api/v1/bills/", {"ordering": "-total"}).status_code == 200
