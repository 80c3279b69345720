"""The billing run: once per account and period, whatever runs twice or at once; re-bills; errors."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from billing import bills
from billing.bills import bill_rebill, bill_run_create, bill_run_execute
from billing.models import Bill, BillingRun
from billing.tasks import bill_cycle_run
from billing.tests.bills_helpers import local, readings, store_and_roll_up
from mdms.core.models import Tariff, TouPeriod
from mdms.core.testing import make_consumer, run_at_once

NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)


def november(*people: Any, energy: Any = lambda ts: 0.25) -> None:
    documents = [d for p in people for d in readings(p.meter.pk, NOV, DEC, energy)]
    store_and_roll_up(documents, [p.meter.pk for p in people], NOV, DEC)


def run(run_date: dt.date = DEC) -> BillingRun:
    return bill_run_execute(run=bill_run_create(run_date=run_date))


@pytest.mark.django_db
def test_the_run_bills_the_previous_month_with_progress_and_counts(alice: Any, bob: Any, mongo: Any) -> None:
    november(alice, bob)
    done = run()
    assert done.status == BillingRun.Status.COMPLETED
    assert (done.total, done.done, done.bills_created, done.failed) == (2, 2, 2, 0)
    assert (done.period_start, done.period_end) == (NOV, DEC)
    assert done.started_at and done.finished_at and done.progress == 1.0
    bills = Bill.objects.filter(run=done)
    assert {b.account_id for b in bills} == {alice.account.pk, bob.account.pk}
    assert all(b.import_kwh == Decimal("720.000") and b.total == Decimal("190.00") for b in bills)


@pytest.mark.django_db
def test_running_twice_bills_each_account_once(alice: Any, bob: Any, mongo: Any) -> None:
    november(alice, bob)
    run()
    second = run()
    assert (second.bills_created, second.already_billed) == (0, 2)
    assert Bill.objects.count() == 2


@pytest.mark.django_db
def test_the_unique_constraint_stops_a_run_that_missed_the_check(
    alice: Any, bob: Any, mongo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    november(alice, bob)
    run()
    # As if a second run had checked before the first one committed.
    monkeypatch.setattr(bills, "_already_billed", lambda *args: set())
    second = run()
    assert (second.bills_created, second.already_billed, second.failed) == (0, 2, 0)
    assert Bill.objects.count() == 2


@pytest.mark.django_db
def test_a_second_version_one_bill_is_refused_by_the_database(alice: Any, mongo: Any) -> None:
    november(alice)
    bill = Bill.objects.get(run=run())
    bill.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        bill.save()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("role_groups")
def test_two_concurrent_runs_produce_one_bill_per_account(mongo: Any) -> None:
    people = [make_consumer(f"race{n}") for n in range(6)]
    november(*people)
    runs = [bill_run_create(run_date=DEC) for _ in range(2)]
    run_at_once(*(functools.partial(bill_run_execute, run=billing_run, chunk=2) for billing_run in runs))
    finished = BillingRun.objects.filter(pk__in=[r.pk for r in runs])
    assert sum(r.bills_created for r in finished) == 6
    assert sum(r.already_billed for r in finished) == 6
    assert Bill.objects.count() == 6
    assert set(Bill.objects.values_list("account_id", flat=True)) == {p.account.pk for p in people}


@pytest.mark.django_db
def test_executing_the_same_run_twice_does_nothing_the_second_time(alice: Any, mongo: Any) -> None:
    november(alice)
    billing_run = bill_run_create(run_date=DEC)
    bill_run_execute(run=billing_run)
    again = bill_run_execute(run=billing_run)
    assert again.bills_created == 1 and Bill.objects.count() == 1


@pytest.mark.django_db
def test_an_account_that_fails_is_recorded_and_the_run_goes_on(alice: Any, mongo: Any) -> None:
    broken = Tariff.objects.create(code="weekday-only", name="No weekend bands", energy_rate_per_kwh=None)
    TouPeriod.objects.create(tariff=broken, name="all", day_type="weekday", start_time=dt.time(0),
                             end_time=dt.time(0), rate_per_kwh=Decimal("0.2"))  # fmt: skip
    erin = make_consumer("erin", tariff=broken)
    november(alice, erin)
    done = run()
    assert done.status == BillingRun.Status.COMPLETED
    assert (done.bills_created, done.failed) == (1, 1)
    assert done.errors[0]["account"] == erin.account.number
    assert "weekend" in done.errors[0]["error"]
    assert Bill.objects.get().account_id == alice.account.pk


@pytest.mark.django_db
def test_other_cycle_days_are_billed_on_their_own_day(alice: Any, mongo: Any) -> None:
    frank = make_consumer("frank", bill_cycle_day=15)
    store_and_roll_up(readings(frank.meter.pk, dt.date(2026, 10, 15), dt.date(2026, 11, 15)), [frank.meter.pk],
                      dt.date(2026, 10, 15), dt.date(2026, 11, 15))  # fmt: skip
    first = run(NOV)
    # Alice (cycle day 1) has no October data at all: held, never billed as zero; frank is not due.
    assert not Bill.objects.filter(run=first).exists()
    assert (first.total, first.held) == (1, 1)
    assert first.holds[0]["account"] == alice.account.number
    mid = run(dt.date(2026, 11, 15))
    bill = Bill.objects.get(run=mid)
    assert bill.account_id == frank.account.pk
    assert (bill.period_start, bill.period_end) == (dt.date(2026, 10, 15), dt.date(2026, 11, 15))
    assert bill.import_kwh == Decimal(31 * 24 + 1)


@pytest.mark.django_db
def test_rebill_after_late_data_creates_version_two_and_keeps_version_one(alice: Any, bill: Any, mongo: Any) -> None:
    day10 = (local(dt.date(2026, 11, 10)).astimezone(dt.UTC), local(dt.date(2026, 11, 11)).astimezone(dt.UTC))
    november(alice, energy=lambda ts: None if day10[0] < ts <= day10[1] else 0.25)
    first = Bill.objects.get(run=run())
    # The missing day was estimated from the meter's own profile before billing, and flagged.
    assert (first.import_kwh, first.estimated_kwh) == (Decimal("720.000"), Decimal("24.000"))
    store_and_roll_up(readings(alice.meter.pk, dt.date(2026, 11, 10), dt.date(2026, 11, 11)), [alice.meter.pk],
                      dt.date(2026, 11, 10), dt.date(2026, 11, 11))  # fmt: skip
    second = bill_rebill(bill=first, reason="late readings of 10 November", created_by=bill)
    first.refresh_from_db()
    assert (second.version, second.is_current, second.import_kwh) == (2, True, Decimal("720.000"))
    assert second.estimated_kwh == Decimal("0.000")  # measured now
    assert second.rebill_reason == "late readings of 10 November" and second.created_by == bill
    assert (first.version, first.is_current, first.estimated_kwh) == (1, False, Decimal("24.000"))
    with pytest.raises(ValueError, match="superseded"):
        bill_rebill(bill=first, reason="again", created_by=bill)
    assert run().already_billed == 1  # the re-billed period is still billed once


@pytest.mark.django_db
def test_the_beat_task_bills_the_accounts_of_the_day_and_skips_days_without_cycles(alice: Any, mongo: Any) -> None:
    november(alice)
    run_pk = bill_cycle_run("2026-12-01")
    assert BillingRun.objects.get(pk=run_pk).bills_created == 1
    assert bill_cycle_run("2026-12-29") is None  # cycle days run from 1 to 28


@pytest.mark.django_db
def test_the_command_runs_the_billing_of_a_date(alice: Any, mongo: Any) -> None:
    november(alice)
    out = StringIO()
    call_command("run_billing", "--date", "2026-12-01", stdout=out, stderr=StringIO())
    assert "completed: 1 bills, 0 already billed, 0 failed" in out.getvalue()
    call_command("run_billing", "--date", "2026-12-01", stdout=out, stderr=StringIO())
    assert "completed: 0 bills, 1 already billed, 0 failed" in out.getvalue()
