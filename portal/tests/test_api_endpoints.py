"""The API's routes do their job: registration, readings with estimates marked, bills, errors, limits."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from billing.vee.services import vee_run
from mdms.core.api_tokens import api_token_authenticate
from mdms.core.localtime import local_midnight
from mdms.core.models import ApiToken, AuditLog, Meter
from mdms.core.services import mqtt_password_matches
from portal.api.testing import make_bill, rest_settings, session_client, token_client
from portal.tests.usage_data import INTERVAL, store_days

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 10, 5)


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


def test_registering_a_meter_returns_its_mqtt_password_once(alice: Any) -> None:
    client = token_client("meter_admin")
    premise = alice.account.premise_id
    response = client.post("/api/v1/meters/", {"serial": "API-0001", "premise": premise}, format="json")
    assert response.status_code == 201
    body = response.json()
    meter = Meter.objects.get(serial="API-0001")
    assert body["mqtt"]["username"] == "API-0001"
    assert mqtt_password_matches(body["mqtt"]["password"], meter.mqtt_password_hash)
    assert body["meter"]["premise"] == premise
    assert "password" not in json.dumps(client.get(f"/api/v1/meters/{meter.pk}/").json())
    assert AuditLog.objects.filter(action="meter_register", target="meter:API-0001").exists()


def test_registering_a_taken_serial_is_a_400_naming_the_field(alice: Any) -> None:
    response = token_client("meter_admin").post("/api/v1/meters/", {"serial": alice.meter.serial}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "unique", "message": "A meter with this serial is registered already.", "field": "serial"}
    }


@pytest.fixture
def alice_usage(alice: Any, mongo: Any) -> Any:
    """A day of alice's readings with a two-hour gap that VEE estimates."""
    gap = {local_midnight(DAY) + dt.timedelta(hours=10) + INTERVAL * k for k in range(1, 9)}
    store_days(alice.meter, DAY, DAY + dt.timedelta(days=1), missing=gap)
    vee_run(meter_pks=[alice.meter.pk], first_day=DAY, end_day=DAY + dt.timedelta(days=1))
    return gap


def _readings(client: APIClient, meter: Meter, resolution: str, days: int = 1, **extra: Any) -> Any:
    start = local_midnight(DAY)
    params = {
        "resolution": resolution,
        "start": start.isoformat(),
        "end": (start + dt.timedelta(days=days)).isoformat(),
    }
    return client.get(f"/api/v1/meters/{meter.pk}/readings/", {**params, **extra})


def test_readings_mark_estimated_values_at_every_resolution(alice: Any, alice_usage: Any) -> None:
    client = session_client(alice.user)
    raw = _readings(client, alice.meter, "raw", page_size=1000).json()
    assert raw["count"] == 96
    estimated_ends = {dt.datetime.fromisoformat(row["end"]) for row in raw["results"] if row["estimated"]}
    assert estimated_ends == alice_usage
    hours = _readings(client, alice.meter, "hour").json()["results"]
    assert len(hours) == 24
    assert [row["estimated"] for row in hours].count(True) == 2
    day = _readings(client, alice.meter, "day").json()["results"]
    assert len(day) == 1
    assert day[0]["estimated"] is True
    assert day[0]["estimated_import_kwh"] > 0
    assert day[0]["import_kwh"] == pytest.approx(sum(row["import_kwh"] for row in hours))


def test_readings_beyond_the_range_limit_are_a_clear_400(alice: Any) -> None:
    response = _readings(session_client(alice.user), alice.meter, "raw", days=32)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "range_too_long"
    assert error["field"] == "end"
    assert "31 days" in error["message"]
    assert _readings(session_client(alice.user), alice.meter, "hour", days=366).status_code == 200


def test_bad_input_never_gives_a_500(alice: Any) -> None:
    client = session_client(alice.user)
    url = f"/api/v1/meters/{alice.meter.pk}/readings/"
    assert client.get(url, {"start": "yesterday", "end": "x"}).json()["error"]["field"] == "start"
    assert client.get(url, {"resolution": "week"}).json()["error"]["code"] == "invalid_choice"
    assert client.get("/api/v1/meters/", {"page": "abc"}).status_code == 404
    assert client.get("/api/v1/nowhere/").json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/meters/9999999/").json()["error"]["code"] == "not_found"
    assert client.delete(f"/api/v1/meters/{alice.meter.pk}/").status_code in (403, 404, 405)


def test_bad_json_and_unknown_methods_answer_in_the_error_format(olivia: Any) -> None:
    client = token_client("meter_admin")
    response = client.post("/api/v1/meters/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    response = client.put("/api/v1/meters/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_oversize_json_body_is_refused_with_413(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = token_client("meter_admin")
    response = client.post("/api/v1/meters/", {"serial": "S" * 2000}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_bills_carry_line_items_and_every_version(alice: Any, bill: Any) -> None:
    first = make_bill(alice, version=1, is_current=False)
    second = make_bill(alice, version=2)
    mine = session_client(alice.user).get("/api/v1/bills/").json()
    assert [row["version"] for row in mine["results"]] == [2, 1]
    detail = session_client(bill).get(f"/api/v1/bills/{second.pk}/").json()
    assert detail["line_items"][0]["amount"] == "75.00"
    assert [(v["id"], v["is_current"]) for v in detail["versions"]] == [(first.pk, False), (second.pk, True)]
    current = token_client("billing").get("/api/v1/bills/", {"is_current": "true"}).json()
    assert [row["id"] for row in current["results"]] == [second.pk]


def test_determinants_list_the_accounts_billed_on_a_date(alice: Any, bob: Any, mongo: Any) -> None:
    response = token_client("billing").get("/api/v1/determinants/", {"date": "2026-11-01"})
    assert response.status_code == 200
    numbers = {row["account_number"] for row in response.json()["results"]}
    assert numbers == {alice.account.number, bob.account.number}
    assert token_client("billing").get("/api/v1/determinants/", {"date": "2026-11-30"}).status_code == 400


def test_the_token_command_issues_lists_and_revokes(bill: Any, capsys: Any) -> None:
    call_command("api_token", "issue", "SAP IS-U", "--scope", "billing", "--scope", "cis_read", "--by", "bill")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    token = api_token_authenticate(key)
    assert token is not None
    assert token.scopes == ["billing", "cis_read"]
    call_command("api_token", "list")
    listing = capsys.readouterr().out
    assert "SAP IS-U" in listing
    assert key not in listing
    call_command("api_token", "revoke", str(token.pk), "--by", "bill")
    assert api_token_authenticate(key) is None
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    actions = list(AuditLog.objects.filter(actor_label="bill").values_list("action", flat=True))
    assert sorted(actions) == ["token_issue", "token_revoke"]


def test_the_docs_page_uses_only_local_assets(db: None) -> None:
    page = APIClient().get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower()
    assert "/static/drf_spectacular_sidecar/" in page


def test_throttled_callers_get_429_with_retry_after(alice: Any, settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings(token="3/min")
    client = token_client("cis_read", name=f"throttled-{timezone.now().timestamp()}")
    statuses = [client.get("/api/v1/meters/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/meters/")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "throttled"


def test_callers_without_credentials_are_throttled_too(db: None, settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings(anon="2/min")
    address = f"10.{timezone.now().microsecond % 250}.{timezone.now().second}.7"  # a budget of its own
    client = APIClient(REMOTE_ADDR=address)
    assert [client.get("/api/v1/meters/").status_code for _ in range(3)] == [401, 401, 429]


def test_staff_issue_a_token_in_the_admin_and_see_its_key_once(admin_client: Any) -> None:
    page = admin_client.get("/admin/core/apitoken/add/")
    assert page.status_code == 200
    response = admin_client.post(
        "/admin/core/apitoken/add/", {"name": "MDM export", "scopes": ["cis_read"]}, follow=True
    )
    message = next(str(m) for m in response.context["messages"])
    key = message.rsplit(" ", 1)[-1]
    token = api_token_authenticate(key)
    assert token is not None and token.scopes == ["cis_read"]
    assert key not in admin_client.get(f"/admin/core/apitoken/{token.pk}/change/").content.decode()
