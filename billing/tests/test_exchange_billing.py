"""Billing across master-data changes: an exchange in the middle of a day, a multiplier from a date."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from billing import determinants as det
from billing.billable_usage import determinants_for, multiplier_stretches
from billing.rollups import rollups_rebuild
from billing.tests.bills_helpers import interval_ends, local
from ingest import pipeline
from mdms.core import services
from mdms.core.models import Meter
from mdms.core.mqtt import topics

pytestmark = pytest.mark.django_db

SEP, OCT = dt.date(2026, 9, 1), dt.date(2026, 10, 1)


def through_the_ingest(serial: str, kwh: float, first: dt.date = SEP, end: dt.date = OCT) -> pipeline.Batch:
    """Every 15-minute interval of [first, end) sent by the meter, through the ingest's own rules."""
    ends = interval_ends(first, end)
    batch = pipeline.Batch()
    meters = pipeline.MeterCache()
    for i in range(0, len(ends), 96):
        payload = [{"ts": ts.isoformat(), "interval_s": 900, "energy_import_kwh": kwh} for ts in ends[i : i + 96]]
        raw = json.dumps(payload).encode()
        pipeline.process_message(
            pipeline.Message(topics.topic(serial, topics.Kind.READINGS), raw, dt.datetime.now(tz=dt.UTC)), batch, meters
        )
    pipeline.flush(batch, pipeline.Watermarks(), live=False)
    return batch


def september(person: Any) -> det.Determinants:
    window = det.Window(SEP, OCT, SEP, OCT)
    terms = det.tariff_terms(person.account.tariff)
    result = determinants_for([person.account], {person.account.pk: window}, lambda account: terms)[person.account.pk]
    assert isinstance(result, det.Determinants), result
    return result


def test_a_month_with_an_exchange_at_two_in_the_afternoon_bills_each_meter_for_its_own_hours(
    alice: Any, mongo: Any
) -> None:
    at = local(dt.date(2026, 9, 15), 14).astimezone(dt.UTC)
    services.meter_exchange(
        premise=alice.account.premise, old_meter=alice.meter, new_meter_serial="NEW-ALICE", at=at,
        old_final_register_kwh=Decimal("9000"), new_initial_register_kwh=Decimal("0"),
    )  # fmt: skip
    new = Meter.objects.get(serial="NEW-ALICE")
    # Both meters send the whole month (the old one tested after removal, the new one in the shop).
    through_the_ingest(alice.meter.serial, 0.25)
    through_the_ingest(new.serial, 0.5)
    rollups_rebuild(first_day=SEP, end_day=OCT, meter_pks=[alice.meter.pk, new.pk])
    result = september(alice)
    # Old: 1 Sep 00:00 to 15 Sep 14:00 is 14 days and 14 hours, 1,400 intervals of 0.25 kWh = 350.
    # New: 15 Sep 14:00 to 1 Oct is 10 hours and 15 days, 1,480 intervals of 0.5 kWh = 740.
    assert result.import_kwh == Decimal("1090.000")
    # 30 days of 96 intervals, each expected once: none missing across the exchange.
    assert (result.intervals_expected, result.intervals_missing) == (2880, 0)


def test_an_exchange_at_midnight_bills_the_day_to_the_new_meter_alone(alice: Any, mongo: Any) -> None:
    at = local(dt.date(2026, 9, 15)).astimezone(dt.UTC)
    services.meter_exchange(
        premise=alice.account.premise, old_meter=alice.meter, new_meter_serial="NEW-ALICE", at=at,
        old_final_register_kwh=Decimal("9000"), new_initial_register_kwh=Decimal("0"),
    )  # fmt: skip
    new = Meter.objects.get(serial="NEW-ALICE")
    through_the_ingest(alice.meter.serial, 0.25)
    through_the_ingest(new.serial, 0.5)
    rollups_rebuild(first_day=SEP, end_day=OCT, meter_pks=[alice.meter.pk, new.pk])
    # 14 days x 24 kWh on the old meter, 16 days x 48 kWh on the new one.
    assert september(alice).import_kwh == Decimal("1104.000")


def test_a_multiplier_change_in_the_middle_of_the_month_scales_each_day_by_its_own(alice: Any, mongo: Any) -> None:
    services.meter_set_multiplier(meter=alice.meter, multiplier=Decimal("2"), effective_from=dt.date(2026, 9, 10))
    through_the_ingest(alice.meter.serial, 0.25)
    rollups_rebuild(first_day=SEP, end_day=OCT, meter_pks=[alice.meter.pk])
    # 9 days x 24 kWh x 1, then 21 days x 24 kWh x 2.
    assert september(alice).import_kwh == Decimal("1224.000")


def test_multiplier_stretches_cut_a_window_where_the_multiplier_changes() -> None:
    history = [
        (dt.date(2026, 1, 1), Decimal(1)),
        (dt.date(2026, 9, 10), Decimal(2)),
        (dt.date(2026, 9, 20), Decimal(2)),
    ]
    assert multiplier_stretches(history, Decimal(7), SEP, OCT) == [
        (SEP, dt.date(2026, 9, 10), Decimal(1)),
        (dt.date(2026, 9, 10), OCT, Decimal(2)),
    ]
    # No history: the meter's own multiplier; a change after the window changes nothing in it.
    assert multiplier_stretches([], Decimal(7), SEP, OCT) == [(SEP, OCT, Decimal(7))]
    assert multiplier_stretches([(OCT, Decimal(3))], Decimal(7), SEP, OCT) == [(SEP, OCT, Decimal(7))]
