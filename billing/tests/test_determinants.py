"""Determinants and bills from real readings in MongoDB, rolled up, billed by the real run."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing import determinants as det
from billing import pricing
from billing.billable_usage import determinants_for
from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill
from billing.tests.bills_helpers import local, make_tou_tariff, readings, store_and_roll_up
from mdms.core.models import Holiday, Meter
from mdms.core.testing import make_consumer
from mdms.core.timeseries import READINGS, collection
from mdms.core.timeseries import rollups as rollup_store

pytestmark = pytest.mark.django_db


def billed(account: Any, run_date: dt.date) -> Bill:
    bill_run_execute(run=bill_run_create(run_date=run_date))
    return Bill.objects.get(account=account, is_current=True, period_end__lte=run_date)


def test_spring_forward_month_bills_its_743_hours(alice: Any, mongo: Any) -> None:
    store_and_roll_up(readings(alice.meter.pk, dt.date(2026, 3, 1), dt.date(2026, 4, 1)), [alice.meter.pk],
                      dt.date(2026, 3, 1), dt.date(2026, 4, 1))  # fmt: skip
    bill = billed(alice.account, dt.date(2026, 4, 1))
    assert (bill.period_start, bill.period_end) == (dt.date(2026, 3, 1), dt.date(2026, 4, 1))
    assert bill.import_kwh == Decimal("743.000")
    assert bill.determinants["intervals_expected"] == 743 * 4
    assert bill.determinants["intervals_missing"] == 0
    assert bill.total == Decimal("10.00") + Decimal("185.75")
    assert not bill.is_estimated


def test_fall_back_month_bills_its_745_hours(alice: Any, mongo: Any) -> None:
    store_and_roll_up(readings(alice.meter.pk, dt.date(2026, 10, 1), dt.date(2026, 11, 1)), [alice.meter.pk],
                      dt.date(2026, 10, 1), dt.date(2026, 11, 1))  # fmt: skip
    bill = billed(alice.account, dt.date(2026, 11, 1))
    assert bill.import_kwh == Decimal("745.000")
    assert bill.determinants["intervals_expected"] == 745 * 4
    assert bill.determinants["intervals_missing"] == 0


def test_leap_february_2028_bills_29_days(alice: Any, mongo: Any) -> None:
    store_and_roll_up(readings(alice.meter.pk, dt.date(2028, 2, 1), dt.date(2028, 3, 1)), [alice.meter.pk],
                      dt.date(2028, 2, 1), dt.date(2028, 3, 1))  # fmt: skip
    bill = billed(alice.account, dt.date(2028, 3, 1))
    assert bill.determinants["cycle_days"] == 29
    assert bill.import_kwh == Decimal("696.000")
    assert [i.code for i in bill.line_items.all()] == ["fixed", "energy"]
    assert bill.line_items.get(code="fixed").amount == Decimal("10.00")


def test_move_in_mid_month_prorates_the_fixed_charge_and_bills_from_the_move(db: None, mongo: Any) -> None:
    carol = make_consumer("carol", move_in=dt.date(2026, 10, 16))
    # Readings before the move-in belong to the previous occupant and must not be billed to carol.
    store_and_roll_up(readings(carol.meter.pk, dt.date(2026, 10, 1), dt.date(2026, 11, 1)), [carol.meter.pk],
                      dt.date(2026, 10, 1), dt.date(2026, 11, 1))  # fmt: skip
    bill = billed(carol.account, dt.date(2026, 11, 1))
    assert (bill.period_start, bill.period_end) == (dt.date(2026, 10, 16), dt.date(2026, 11, 1))
    fixed = bill.line_items.get(code="fixed")
    assert fixed.amount == Decimal("5.16")  # 10.00 x 16/31
    assert fixed.description == "Fixed charge (16/31 days)"
    assert bill.import_kwh == Decimal(16 * 24 + 1)  # the 25-hour 25 October is in carol's part


def test_time_of_use_splits_weekdays_weekends_and_holidays(db: None, mongo: Any) -> None:
    Holiday.objects.create(date=dt.date(2026, 11, 11), name="Armistice")
    dave = make_consumer("dave", tariff=make_tou_tariff())
    store_and_roll_up(readings(dave.meter.pk, dt.date(2026, 11, 1), dt.date(2026, 12, 1)), [dave.meter.pk],
                      dt.date(2026, 11, 1), dt.date(2026, 12, 1))  # fmt: skip
    bill = billed(dave.account, dt.date(2026, 12, 1))
    assert bill.determinants["energy_by_period"] == {
        "holiday:all-day": "24.000",
        "weekday:off-peak": "240.000",
        "weekday:peak": "240.000",
        "weekend:all-day": "216.000",
    }
    amounts = {item.code: item.amount for item in bill.line_items.all()}
    assert amounts == {
        "fixed": Decimal("12.00"),
        "energy:weekday:off-peak": Decimal("36.00"),
        "energy:weekday:peak": Decimal("72.00"),
        "energy:weekend:all-day": Decimal("21.60"),
        "energy:holiday:all-day": Decimal("2.40"),
    }
    assert bill.total == Decimal("144.00")


def test_max_demand_is_the_highest_15_minutes_times_the_multiplier(alice: Any, mongo: Any) -> None:
    Meter.objects.filter(pk=alice.meter.pk).update(multiplier=Decimal("40"))
    spike_end = local(dt.date(2026, 11, 18), 18, 15).astimezone(dt.UTC)
    store_and_roll_up(
        readings(alice.meter.pk, dt.date(2026, 11, 1), dt.date(2026, 12, 1), lambda ts: 2.5 if ts == spike_end else 0.25),
        [alice.meter.pk], dt.date(2026, 11, 1), dt.date(2026, 12, 1),
    )  # fmt: skip
    bill = billed(alice.account, dt.date(2026, 12, 1))
    assert bill.max_demand_kw == Decimal("400.000")  # 2.5 kWh in 15 minutes = 10 kW, x 40
    assert bill.max_demand_at == spike_end
    assert bill.multiplier == Decimal("40")
    assert bill.import_kwh == (Decimal(720) + Decimal("2.25")) * 40


def test_an_estimated_gap_shows_as_estimated_on_the_bill(alice: Any, mongo: Any) -> None:
    gap_start = local(dt.date(2026, 11, 10), 2).astimezone(dt.UTC)
    gap_end = local(dt.date(2026, 11, 10), 6).astimezone(dt.UTC)
    in_gap = lambda ts: gap_start < ts <= gap_end  # noqa: E731
    rows = readings(alice.meter.pk, dt.date(2026, 11, 1), dt.date(2026, 12, 1), lambda ts: None if in_gap(ts) else 0.25)
    rollup_store.upsert_estimates(
        [
            {"meter": alice.meter.pk, "ts": gap_start + dt.timedelta(minutes=15 * k), "energy_import_kwh": 0.25,
             "energy_export_kwh": 0.0, "interval_s": 900, "method": "interpolation"}
            for k in range(1, 17)
        ]
    )  # fmt: skip
    store_and_roll_up(rows, [alice.meter.pk], dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    bill = billed(alice.account, dt.date(2026, 12, 1))
    assert bill.import_kwh == Decimal("720.000")
    assert bill.estimated_kwh == Decimal("4.000")
    assert bill.estimated_share == Decimal("0.0056")  # 4 / 720
    assert bill.is_estimated
    assert bill.line_items.get(code="energy").estimated
    assert bill.determinants["intervals_missing"] == 0  # estimated, not missing


def test_a_gap_the_nightly_vee_missed_is_estimated_before_billing_not_priced_as_zero(alice: Any, mongo: Any) -> None:
    # September: a month that is over. No VEE ran over the gap; the run runs it for this meter first.
    gap_end = local(dt.date(2026, 9, 10), 6).astimezone(dt.UTC)
    rows = readings(
        alice.meter.pk, dt.date(2026, 9, 1), dt.date(2026, 10, 1), lambda ts: None if ts == gap_end else 0.25
    )
    store_and_roll_up(rows, [alice.meter.pk], dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    bill = billed(alice.account, dt.date(2026, 10, 1))
    assert bill.determinants["intervals_missing"] == 0
    assert bill.import_kwh == Decimal("720.000")
    assert bill.estimated_kwh == Decimal("0.250")


# Property: duplicating or shuffling the readings never changes a bill.

DAYS = (dt.date(2026, 10, 24), dt.date(2026, 10, 27))  # spans the 25-hour day


def _bill_of(person: Any, documents: list[dict[str, Any]]) -> tuple[dict[str, Any], list[pricing.LineItem]]:
    collection(READINGS).delete_many({"meter": person.meter.pk})
    store_and_roll_up(documents, [person.meter.pk], *DAYS)
    window = det.Window(dt.date(2026, 10, 1), dt.date(2026, 11, 1), *DAYS)
    terms = det.tariff_terms(person.account.tariff)
    outcome = determinants_for([person.account], {person.account.pk: window}, lambda account: terms)
    result = outcome[person.account.pk]
    assert isinstance(result, det.Determinants)
    return result.as_json(), pricing.line_items(result, terms)


@hypothesis_settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    energies=st.lists(st.integers(0, 4000), min_size=8, max_size=8),
    duplicated=st.lists(st.integers(0, 4 * 73 - 1), max_size=40),
    seed=st.integers(0, 2**32),
)
def test_duplicating_or_shuffling_readings_never_changes_a_bill(
    alice: Any, mongo: Any, energies: list[int], duplicated: list[int], seed: int
) -> None:
    # Values with many decimals, where float sums in another order would differ in the last bits.
    values = [e / 1000 + 1 / 3 for e in energies]
    documents = readings(alice.meter.pk, *DAYS, lambda ts: values[int(ts.timestamp() // 900) % len(values)])
    baseline = _bill_of(alice, documents)
    shuffled = documents + [dict(documents[i % len(documents)]) for i in duplicated]
    random.Random(seed).shuffle(shuffled)
    assert _bill_of(alice, [{k: v for k, v in d.items() if k != "_id"} for d in shuffled]) == baseline


def test_estimates_are_flagged_per_line_and_counted_in_both_directions(mongo: Any, client: Any) -> None:
    """Issue 14 item 7: estimated export counts, only the lines with estimates are flagged, no "0 %"."""
    tariff = make_tou_tariff()
    tariff.export_credit_per_kwh = Decimal("0.04")
    tariff.save(update_fields=["export_credit_per_kwh"])
    grace = make_consumer("grace", tariff=tariff, has_solar=True)
    # Tuesday 10 November 02:00-06:00 (weekday off-peak) is estimated, import and export.
    gap_start = local(dt.date(2026, 11, 10), 2).astimezone(dt.UTC)
    gap_end = local(dt.date(2026, 11, 10), 6).astimezone(dt.UTC)
    in_gap = lambda ts: gap_start < ts <= gap_end  # noqa: E731
    rows = readings(grace.meter.pk, dt.date(2026, 11, 1), dt.date(2026, 12, 1),
                    lambda ts: None if in_gap(ts) else 0.25, export=lambda ts: 0.05)  # fmt: skip
    rollup_store.upsert_estimates(
        [
            {"meter": grace.meter.pk, "ts": gap_start + dt.timedelta(minutes=15 * k), "energy_import_kwh": 0.25,
             "energy_export_kwh": 0.05, "interval_s": 900, "method": "linear"}
            for k in range(1, 17)
        ]
    )  # fmt: skip
    store_and_roll_up(rows, [grace.meter.pk], dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    bill = billed(grace.account, dt.date(2026, 12, 1))
    assert bill.determinants["estimated_import_kwh"] == "4.000"
    assert bill.determinants["estimated_export_kwh"] == "0.800"
    assert bill.estimated_kwh == Decimal("4.800")  # both directions
    lines = {item.code: item.estimated for item in bill.line_items.all()}
    assert lines["energy:weekday:off-peak"] is True
    assert lines["energy:weekday:peak"] is False  # no estimated interval in the peak hours
    assert lines["energy:weekend:all-day"] is False
    assert lines["export_credit"] is True
    assert lines["fixed"] is False
    # 4.8 of 864 kWh is 0.56 %: the customer reads "<1 %" or "1 %", never "0 %".
    client.force_login(grace.user)
    page = client.get(f"/bills/{bill.pk}/").content.decode()
    assert "0 % of the energy" not in page
    assert "1 % of the energy" in page
