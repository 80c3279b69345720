"""The bill projection's hourly profile read from the daily rollups agrees with the one from raw readings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from billing.rollups import rollups_rebuild
from mdms.core.localtime import local_midnight
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries import rollups

INTERVAL = dt.timedelta(minutes=15)


@pytest.mark.django_db
def test_the_profile_from_rollups_equals_the_profile_from_raw_readings_across_a_dst_change(mongo: Any) -> None:
    kim = make_consumer("kim")
    first, end = dt.date(2026, 10, 19), dt.date(2026, 11, 2)  # two weeks around the 25 October change
    documents, ts = [], local_midnight(first) + INTERVAL
    while ts <= local_midnight(end):
        # A value that depends on the instant, so that every (weekday, hour) slot differs.
        import_kwh = round(0.05 + (ts.timestamp() // 900 % 97) / 1000, 6)
        documents.append(stored.reading_document(meter_pk=kim.meter.pk, ts=ts, received_at=ts,
                                                 values={"energy_import_kwh": import_kwh, "energy_export_kwh": 0.01},
                                                 interval_s=900))  # fmt: skip
        ts += INTERVAL
    stored.insert_readings(documents)
    rollups_rebuild(first_day=first, end_day=end, meter_pks=[kim.meter.pk])

    raw = rollups.hourly_profile(kim.meter.pk, local_midnight(first), local_midnight(end))
    from_rollups = rollups.hourly_profile_from_rollups(kim.meter.pk, local_midnight(first), local_midnight(end))

    assert raw.keys() == from_rollups.keys()
    for slot, (import_kwh, export_kwh) in raw.items():
        assert from_rollups[slot] == pytest.approx((import_kwh, export_kwh), abs=1e-6), slot


@pytest.mark.django_db
def test_a_day_with_missing_intervals_is_left_out_of_the_profile_from_rollups(mongo: Any) -> None:
    lea = make_consumer("lea")
    day = dt.date(2026, 11, 2)  # a Monday
    documents = [
        stored.reading_document(meter_pk=lea.meter.pk, ts=local_midnight(day) + INTERVAL * k, received_at=local_midnight(day),
                                values={"energy_import_kwh": 0.25}, interval_s=900)
        for k in range(1, 97) if k != 40
    ]  # fmt: skip
    stored.insert_readings(documents)
    rollups_rebuild(first_day=day, end_day=day + dt.timedelta(days=1), meter_pks=[lea.meter.pk])

    assert (
        rollups.hourly_profile_from_rollups(
            lea.meter.pk, local_midnight(day), local_midnight(day + dt.timedelta(days=1))
        )
        == {}
    )
