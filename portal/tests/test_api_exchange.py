"""POST /api/v1/meters/{id}/exchange/: a CIS sends a field work order's exchange."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mdms.core import services
from mdms.core.models import AuditLog, Meter, MeterExchange
from portal.api.testing import rest_settings, session_client, token_client

pytestmark = pytest.mark.django_db

AT = "2026-11-20T14:05:00+01:00"
BODY = {"new_serial": "NEW-ALICE", "at": AT, "old_final_register_kwh": "45123.4",
        "new_initial_register_kwh": "0.2", "work_order": "WO-77"}  # fmt: skip


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


def test_a_meter_admin_token_exchanges_a_meter_and_gets_the_new_password_once(alice: Any) -> None:
    response = token_client("meter_admin", name="cis").post(
        f"/api/v1/meters/{alice.meter.pk}/exchange/", BODY, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    new = Meter.objects.get(serial="NEW-ALICE")
    assert body["meter"]["serial"] == "NEW-ALICE" and body["old_meter"]["status"] == "removed"
    assert body["mqtt"]["username"] == "NEW-ALICE"
    assert services.mqtt_password_matches(body["mqtt"]["password"], new.mqtt_password_hash)
    record = MeterExchange.objects.get()
    assert record.exchanged_at == dt.datetime(2026, 11, 20, 13, 5, tzinfo=dt.UTC)
    assert (str(record.old_final_register_kwh), record.work_order) == ("45123.400", "WO-77")
    row = AuditLog.objects.get(action=AuditLog.Action.METER_EXCHANGE)
    assert (row.actor_label, row.target) == ("token:cis", f"meter:{alice.meter.serial}")
    assert row.detail["new_serial"] == "NEW-ALICE"


def test_a_read_only_token_cannot_exchange_a_meter(alice: Any) -> None:
    response = token_client("cis_read").post(f"/api/v1/meters/{alice.meter.pk}/exchange/", BODY, format="json")
    assert response.status_code == 403
    assert not MeterExchange.objects.exists()


def test_a_consumer_gets_404_for_another_consumers_meter(alice: Any, bob: Any) -> None:
    response = session_client(alice.user).post(f"/api/v1/meters/{bob.meter.pk}/exchange/", BODY, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"at": "2026-11-20T14:05:00"}, "at"),
        ({"at": "2999-01-01T00:00:00Z"}, "at"),
        ({"old_final_register_kwh": "-1"}, "old_final_register_kwh"),
        ({"new_serial": "has space"}, "new_serial"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(alice: Any, change: dict[str, str], field: str) -> None:
    response = token_client("meter_admin").post(
        f"/api/v1/meters/{alice.meter.pk}/exchange/", {**BODY, **change}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["field"] == field
    assert Meter.objects.get(pk=alice.meter.pk).status != Meter.Status.REMOVED


def test_a_second_exchange_of_the_same_meter_is_refused(alice: Any) -> None:
    client = token_client("meter_admin")
    assert client.post(f"/api/v1/meters/{alice.meter.pk}/exchange/", BODY, format="json").status_code == 201
    again = client.post(f"/api/v1/meters/{alice.meter.pk}/exchange/", {**BODY, "new_serial": "N2"}, format="json")
    assert again.status_code == 400
    assert "not installed" in again.json()["error"]["message"]
    assert MeterExchange.objects.count() == 1
