"""The projected bill: usage so far plus the meter's profile, priced like the bill that follows."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pytest

from billing.bills import bill_run_create, bill_run_execute
from billing.determinants import current_period
from billing.models import Bill
from billing.projection import bill_projection
from billing.rollups import rollups_rebuild
from billing.tests.bills_helpers import local, make_tou_tariff, readings
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as stored

pytestmark = pytest.mark.django_db


def household(ts: dt.datetime) -> float:
    """A steady household: the same weekly shape every week (evening peak, more at weekends),
    with a deterministic +/-15 % wobble from interval to interval."""
    start = (ts - dt.timedelta(minutes=15)).astimezone(local(dt.date(2026, 1, 1)).tzinfo)
    hour = start.hour + start.minute / 60
    load = 0.08 + 0.10 * math.exp(-((hour - 7.5) ** 2) / 2) + 0.22 * math.exp(-((hour - 19.5) ** 2) / 3)
    if start.weekday() >= 5:
        load *= 1.25
    wobble = 1 + 0.15 * math.sin(ts.timestamp() / 900 * 2.39996)
    return round(load * wobble, 4)


def store(
    meter_pk: int, first_day: dt.date, end_day: dt.date, energy: Any, *, after: Any = None, until: Any = None
) -> None:
    """Readings of local days [first_day, end_day) whose end is in (after, until], rolled up."""

    def within(ts: dt.datetime) -> float | None:
        if (after is not None and ts <= after) or (until is not None and ts > until):
            return None
        return float(energy(ts))

    stored.insert_readings(readings(meter_pk, first_day, end_day, within))
    rollups_rebuild(first_day=first_day, end_day=end_day, meter_pks=[meter_pk])


def actual_bill(run_date: dt.date, account: Any) -> Bill:
    bill_run_execute(run=bill_run_create(run_date=run_date))
    return Bill.objects.get(account=account, is_current=True, period_end=run_date)


@pytest.mark.parametrize("time_of_use", [False, True], ids=["flat", "time-of-use"])
def test_a_steady_profile_projects_within_5_percent_of_the_actual_bill(mongo: Any, time_of_use: bool) -> None:
    person = make_consumer("steady", tariff=make_tou_tariff() if time_of_use else None)
    now = local(dt.date(2026, 11, 12), 10, 30).astimezone(dt.UTC)
    # Six weeks of history up to now, projected; then the rest of November arrives and is billed.
    store(person.meter.pk, dt.date(2026, 10, 1), dt.date(2026, 11, 13), household, until=now)

    projection = bill_projection(account=person.account, meter=person.meter, now=now)

    store(person.meter.pk, dt.date(2026, 11, 12), dt.date(2026, 12, 1), household, after=now)
    bill = actual_bill(dt.date(2026, 12, 1), person.account)
    assert projection is not None
    assert projection.basis == "profile"
    assert (projection.window.billed_start, projection.window.billed_end) == (
        dt.date(2026, 11, 1),
        dt.date(2026, 12, 1),
    )
    assert abs(projection.point - bill.total) / bill.total < Decimal("0.05")
    assert abs(projection.kwh_projected - float(bill.import_kwh)) / float(bill.import_kwh) < 0.05
    # The band holds the actual bill and is a fair share of it, neither nothing nor everything.
    assert projection.low < projection.point < projection.high
    assert projection.low <= bill.total <= projection.high
    assert Decimal("0.005") < (projection.high - projection.low) / projection.point < Decimal("0.25")
    # As of 10:00 on the 12th: 11 days and 10 hours of 30 days gone, that much measured.
    assert projection.as_of == local(dt.date(2026, 11, 12), 10).astimezone(dt.UTC)
    assert projection.days_elapsed == pytest.approx(11 + 10 / 24)
    assert projection.elapsed_share == pytest.approx((11 * 24 + 10) / 720)
    measured = sum(household(ts) for ts in _ends(local(dt.date(2026, 11, 1)), projection.as_of))
    assert projection.kwh_so_far == pytest.approx(measured, abs=1e-6)
    assert [item.code for item in projection.line_items] == [item.code for item in bill.line_items.order_by("position")]


def _ends(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    step = dt.timedelta(minutes=15)
    ends, ts = [], start.astimezone(dt.UTC) + step
    while ts <= end:
        ends.append(ts)
        ts += step
    return ends


@pytest.mark.parametrize(
    ("month", "next_month", "hours"),
    [(dt.date(2026, 10, 1), dt.date(2026, 11, 1), 745), (dt.date(2027, 3, 1), dt.date(2027, 4, 1), 743)],
    ids=["october-25-hour-day", "march-23-hour-day"],
)
def test_a_dst_month_projects_every_real_hour(mongo: Any, month: dt.date, next_month: dt.date, hours: int) -> None:
    person = make_consumer("dst")
    now = local(month.replace(day=10), 12).astimezone(dt.UTC)
    flat = lambda ts: 0.25  # noqa: E731 - 1 kWh an hour, every hour
    store(person.meter.pk, month - dt.timedelta(days=35), month.replace(day=11), flat, until=now)

    projection = bill_projection(account=person.account, meter=person.meter, now=now)

    store(person.meter.pk, month.replace(day=10), next_month, flat, after=now)
    bill = actual_bill(next_month, person.account)
    assert projection is not None
    assert projection.kwh_projected == pytest.approx(hours)
    assert bill.import_kwh == Decimal(hours)
    assert projection.point == bill.total
    # Every day alike: no spread, so no band.
    assert projection.low == projection.point == projection.high


def test_without_history_the_period_so_far_is_extrapolated(mongo: Any) -> None:
    person = make_consumer("newcomer", move_in=dt.date(2026, 11, 1))
    now = local(dt.date(2026, 11, 3), 0).astimezone(dt.UTC)
    store(person.meter.pk, dt.date(2026, 11, 1), dt.date(2026, 11, 3), lambda ts: 0.5, until=now)

    projection = bill_projection(account=person.account, meter=person.meter, now=now)

    assert projection is not None
    # The profile comes from readings, so two days are already a profile; with none before the
    # period the estimate is this period's weekday/hour means, 2 kWh an hour either way.
    assert projection.kwh_projected == pytest.approx(720 * 2)
    assert projection.kwh_so_far == pytest.approx(96.0)
    # Too few days to measure the spread: the fallback band, wide but finite.
    assert projection.profile_days == 0
    assert projection.low < projection.point < projection.high


def test_no_data_at_all_projects_nothing(mongo: Any) -> None:
    person = make_consumer("silent")
    now = local(dt.date(2026, 11, 3), 9).astimezone(dt.UTC)
    assert bill_projection(account=person.account, meter=person.meter, now=now) is None


def test_a_move_in_projects_only_the_days_served(mongo: Any) -> None:
    person = make_consumer("mover", move_in=dt.date(2026, 11, 16))
    now = local(dt.date(2026, 11, 20), 0).astimezone(dt.UTC)
    store(person.meter.pk, dt.date(2026, 10, 16), dt.date(2026, 11, 20), lambda ts: 0.25, until=now)

    projection = bill_projection(account=person.account, meter=person.meter, now=now)

    assert projection is not None
    assert (projection.window.billed_start, projection.days_total) == (dt.date(2026, 11, 16), 15)
    assert projection.kwh_so_far == pytest.approx(4 * 24)
    assert projection.kwh_projected == pytest.approx(15 * 24)
    fixed = next(item for item in projection.line_items if item.code == "fixed")
    assert fixed.amount == Decimal("5.00")  # 15 of 30 days of the 10 EUR standing charge


@pytest.mark.parametrize(
    ("cycle_day", "today", "expected"),
    [
        (1, dt.date(2026, 11, 12), (dt.date(2026, 11, 1), dt.date(2026, 12, 1))),
        (15, dt.date(2026, 11, 12), (dt.date(2026, 10, 15), dt.date(2026, 11, 15))),
        (15, dt.date(2026, 11, 15), (dt.date(2026, 11, 15), dt.date(2026, 12, 15))),
        (28, dt.date(2027, 1, 3), (dt.date(2026, 12, 28), dt.date(2027, 1, 28))),
    ],
)
def test_the_current_period_follows_the_bill_cycle_day(
    cycle_day: int, today: dt.date, expected: tuple[dt.date, dt.date]
) -> None:
    assert current_period(cycle_day, today) == expected


def test_a_price_change_inside_the_period_is_projected_as_the_bill_will_price_it(mongo: Any) -> None:
    from mdms.core.models import Tariff, TariffVersion

    tariff = Tariff.objects.create(code="flat-change", name="Flat, changing", energy_rate_per_kwh=Decimal("0.20"),
                                   fixed_monthly_charge=Decimal("10"))  # fmt: skip
    TariffVersion.objects.create(tariff=tariff, effective_from=dt.date(2026, 11, 16), fixed_monthly_charge=Decimal("12"),
                                 energy_rate_per_kwh=Decimal("0.40"))  # fmt: skip
    person = make_consumer("changing", tariff=tariff)
    now = local(dt.date(2026, 11, 12), 10, 30).astimezone(dt.UTC)
    store(person.meter.pk, dt.date(2026, 10, 1), dt.date(2026, 11, 13), household, until=now)

    projection = bill_projection(account=person.account, meter=person.meter, now=now)

    store(person.meter.pk, dt.date(2026, 11, 12), dt.date(2026, 12, 1), household, after=now)
    bill = actual_bill(dt.date(2026, 12, 1), person.account)
    assert projection is not None
    assert {item.code for item in bill.line_items.all()} >= {"energy@2026-11-01", "energy@2026-11-16"}
    assert abs(projection.point - bill.total) / bill.total < Decimal("0.05")
