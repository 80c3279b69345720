"""The audit log records staff actions wherever they are taken: API, services, management command."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from billing.bills import bill_rebill
from billing.tests.bills_helpers import readings, store_and_roll_up
from billing.vee.services import interval_edit
from mdms.core.localtime import local_midnight
from mdms.core.models import AuditLog
from portal.api.testing import make_bill, rest_settings, session_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


def test_an_interval_edit_is_audited_with_its_new_value(alice: Any, bill: Any, mongo: Any) -> None:
    ts = local_midnight(dt.date(2026, 10, 5)) + dt.timedelta(minutes=15)
    interval_edit(meter=alice.meter, ts=ts, import_kwh=0.3, reason="meter swap", user=bill)
    row = AuditLog.objects.get(action=AuditLog.Action.READING_EDIT)
    assert (row.actor, row.actor_label, row.target) == (bill, "bill", f"meter:{alice.meter.serial}")
    assert row.detail["import_kwh"] == 0.3
    assert row.detail["ts"] == ts.isoformat()


def test_a_rebill_is_audited_with_the_bill_it_replaces(alice: Any, bill: Any, mongo: Any) -> None:
    september = (dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    store_and_roll_up(readings(alice.meter.pk, *september), [alice.meter.pk], *september)
    first = make_bill(alice)
    second = bill_rebill(bill=first, reason="late readings", created_by=bill)
    row = AuditLog.objects.get(action=AuditLog.Action.REBILL)
    assert row.target == f"bill:{second.pk}"
    assert row.detail == {
        "account": alice.account.number,
        "replaces": first.pk,
        "version": 2,
        "reason": "late readings",
    }


def test_an_operator_disabling_a_meter_through_the_portal_session_is_audited(olivia: Any, alice: Any) -> None:
    response = session_client(olivia).post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert response.status_code == 200
    row = AuditLog.objects.get(action=AuditLog.Action.METER_DISABLE)
    assert (row.actor, row.target) == (olivia, f"meter:{alice.meter.serial}")
    # Disabling again changes nothing, and so records nothing.
    session_client(olivia).post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert AuditLog.objects.filter(action=AuditLog.Action.METER_DISABLE).count() == 1


def test_billing_staff_requesting_a_read_is_audited_as_themselves(alice: Any, bill: Any) -> None:
    response = session_client(bill).post("/api/v1/reads/", {"meter": alice.meter.serial}, format="json")
    assert response.status_code == 201
    row = AuditLog.objects.get(action=AuditLog.Action.ON_DEMAND_READ)
    assert (row.actor, row.detail["read"]) == (bill, response.json()["id"])
