"""Missed bill-cycle days are caught up, and billing staff start a run of a date by hand (issue 14, item 11)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from billing.bills import HOLD_ROLLUPS_BEHIND, bill_cycle_catch_up, bill_run_create
from billing.models import Bill, BillingRun
from billing.tasks import bill_run_execute_task
from billing.tests.bills_helpers import readings, store_and_roll_up
from mdms.core.models import AuditLog

pytestmark = pytest.mark.django_db
NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def _paris(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Paris"


@pytest.fixture
def november(alice: Any, mongo: Any) -> Any:
    store_and_roll_up(readings(alice.meter.pk, NOV, DEC), [alice.meter.pk], NOV, DEC)
    return alice


def test_a_cycle_day_missed_while_the_stack_was_down_is_billed_by_the_catch_up(november: Any) -> None:
    # The stack was down on 1 December at 08:00; it is back on the 3rd at 10:00.
    runs = bill_cycle_catch_up(now=dt.datetime(2026, 12, 3, 10, 0, tzinfo=PARIS))
    assert [run.run_date for run in runs] == [dt.date(2026, 11, day) for day in range(26, 29)] + [
        dt.date(2026, 12, day) for day in (1, 2, 3)
    ]
    assert Bill.objects.get(account=november.account).run.run_date == DEC
    # Again: every date is billed completely, nothing runs.
    assert bill_cycle_catch_up(now=dt.datetime(2026, 12, 3, 11, 0, tzinfo=PARIS)) == []
    assert Bill.objects.count() == 1


def test_the_catch_up_waits_for_todays_scheduled_hour_and_reruns_dates_held_for_lagging_rollups(
    november: Any,
) -> None:
    for day in range(25, 29):
        BillingRun.objects.create(run_date=dt.date(2026, 11, day), cycle_day=day, period_start=NOV, period_end=DEC,
                                  status=BillingRun.Status.COMPLETED)  # fmt: skip
    held = bill_run_create(run_date=DEC)
    BillingRun.objects.filter(pk=held.pk).update(
        status=BillingRun.Status.COMPLETED,
        held=1,
        holds=[{"account": november.account.number, "kind": HOLD_ROLLUPS_BEHIND, "reason": "behind"}],
    )
    runs = bill_cycle_catch_up(now=dt.datetime(2026, 12, 2, 7, 30, tzinfo=PARIS))
    # 1 Dec again (its account was held while the rollups were behind); the 2nd only after 08:00.
    assert [run.run_date for run in runs] == [DEC]
    assert runs[0].bills_created == 1


def _staff_client(bill: Any) -> Client:
    client = Client()
    client.force_login(bill)
    return client


def test_billing_staff_start_a_run_of_a_date_and_running_it_twice_bills_once(
    november: Any, bill: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = _staff_client(bill)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/billing/", {"run_date": "2026-12-01"})
    assert response.status_code == 302
    assert len(queued) == 1  # the run goes to a worker once committed
    run = BillingRun.objects.get(run_date=DEC)
    assert run.status == BillingRun.Status.PENDING and run.created_by == bill
    assert AuditLog.objects.filter(action=AuditLog.Action.BILL_RUN_START, target=f"run:{run.pk}").exists()
    bill_run_execute_task(run.pk)
    bill_run_execute_task(run.pk)  # a second delivery of the task does nothing
    run.refresh_from_db()
    assert (run.status, run.bills_created) == (BillingRun.Status.COMPLETED, 1)
    assert Bill.objects.count() == 1
    # Started again by hand: a new run of the date, which bills nobody twice.
    client.post("/billing/", {"run_date": "2026-12-01"})
    again = BillingRun.objects.filter(run_date=DEC).exclude(pk=run.pk).get()
    bill_run_execute_task(again.pk)
    again.refresh_from_db()
    assert (again.bills_created, again.already_billed) == (0, 1)
    assert Bill.objects.count() == 1


@pytest.mark.parametrize(
    ("run_date", "message"), [("2026-12-30", "1 to 28"), ("2099-01-01", "future"), ("0001-01-01", "No billing")]
)
def test_a_run_of_a_date_no_run_may_have_is_refused_with_the_reason(bill: Any, run_date: str, message: str) -> None:
    page = _staff_client(bill).post("/billing/", {"run_date": run_date}, follow=True).content.decode()
    assert message in page
    assert not BillingRun.objects.exists()
