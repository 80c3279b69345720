"""Billing staff's pages refuse what would corrupt the record (issue 14)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from billing.models import IntervalEdit, VeeException
from billing.tests.test_rollups import local, quarters
from billing.vee import services as vee_services
from mdms.core.timeseries.readings import insert_readings

DAY = dt.date(2026, 11, 10)
NEXT = DAY + dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _paris(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Paris"


@pytest.fixture
def resolved_exception(alice: Any, bill: Any, mongo: Any) -> VeeException:
    insert_readings(quarters(alice.meter.pk, local(DAY), local(NEXT), kwh=0.25)[:90])
    vee_services.vee_run(meter_pks=[alice.meter.pk], first_day=DAY, end_day=NEXT)
    exception = VeeException.objects.get(meter=alice.meter)
    assert vee_services.vee_exception_resolve(exception=exception, user=bill, resolution="checked")
    return exception


def _edit(client: Client, exception: VeeException, ts: str) -> str:
    response = client.post(
        f"/billing/exceptions/{exception.pk}/",
        {"action": "edit", "edit-ts": ts, "edit-import_kwh": "0.3", "edit-reason": "meter swap"},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_an_edit_far_in_the_future_is_refused_on_a_resolved_exception(resolved_exception: Any, bill: Any) -> None:
    client = Client()
    client.force_login(bill)
    page = _edit(client, resolved_exception, "2030-01-01T00:00")
    assert "outside" in page or "future" in page
    assert not IntervalEdit.objects.exists()


def test_an_edit_outside_the_exceptions_day_is_refused(resolved_exception: Any, bill: Any) -> None:
    client = Client()
    client.force_login(bill)
    page = _edit(client, resolved_exception, "2026-11-20T10:00")
    assert "outside" in page
    assert not IntervalEdit.objects.exists()
    _edit(client, resolved_exception, "2026-11-10T23:45")
    assert IntervalEdit.objects.count() == 1


def test_the_service_refuses_an_edit_of_an_interval_that_has_not_ended(alice: Any, bill: Any, mongo: Any) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not ended"):
        vee_services.interval_edit(
            meter=alice.meter,
            ts=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            import_kwh=0.3,
            reason="typo",
            user=bill,
        )


def test_an_admin_cancels_bills_with_a_reason_and_each_is_audited(alice: Any, admin_client: Any) -> None:
    from mdms.core.models import AuditLog
    from portal.api.testing import make_bill

    wrong = make_bill(alice)
    url = "/admin/billing/bill/"
    asked = admin_client.post(url, {"action": "cancel_bills", "_selected_action": [wrong.pk]})
    assert asked.status_code == 200 and "Why are these bills cancelled?" in asked.content.decode()
    wrong.refresh_from_db()
    assert wrong.cancelled_at is None  # nothing happens before a reason is given
    done = admin_client.post(
        url, {"action": "cancel_bills", "_selected_action": [wrong.pk], "reason": "duplicate final bill"}, follow=True
    )
    assert done.status_code == 200
    wrong.refresh_from_db()
    assert wrong.cancelled_at is not None and wrong.cancel_reason == "duplicate final bill"
    assert AuditLog.objects.get(action=AuditLog.Action.BILL_CANCEL).detail["reason"] == "duplicate final bill"
