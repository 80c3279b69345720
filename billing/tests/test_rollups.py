"""Daily/hourly rollups against the real MongoDB: DST days, late data, duplicates, max demand."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing import rollups, selectors
from mdms.core import stored_batches
from mdms.core.timeseries import ROLLUPS_DAILY, collection
from mdms.core.timeseries.readings import insert_readings, reading_document

PARIS = "Europe/Paris"
QUARTER = dt.timedelta(minutes=15)


@pytest.fixture(autouse=True)
def _paris(settings: Any) -> None:
    settings.TIME_ZONE = PARIS


@pytest.fixture
def clean_stream() -> Any:
    """A stream of our own: the rollups group starts after whatever other tests left."""
    connection = stored_batches.connection()
    connection.delete(stored_batches.STREAM)
    yield
    connection.delete(stored_batches.STREAM)


def quarters(meter_pk: int, start: dt.datetime, end: dt.datetime, kwh: float = 0.25, received: int = 0) -> list[Any]:
    """One reading per 15 minutes for intervals starting in [start, end) (ts = interval end)."""
    received_at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=received)
    documents, begin = [], start
    while begin < end:
        values = {"energy_import_kwh": kwh, "energy_export_kwh": 0.0}
        documents.append(
            reading_document(
                meter_pk=meter_pk, ts=begin + QUARTER, received_at=received_at, values=values, interval_s=900
            )
        )
        begin += QUARTER
    return documents


def store_and_publish(documents: list[Any]) -> None:
    insert_readings(documents)
    stored_batches.publish_stored("readings", documents)


def local(day: dt.date) -> dt.datetime:
    return selectors.local_midnight(day)


def test_spring_day_has_23_hours_and_autumn_day_25(alice: Any, mongo: Any, clean_stream: Any) -> None:
    meter = alice.meter.pk
    store_and_publish(quarters(meter, local(dt.date(2026, 3, 28)), local(dt.date(2026, 3, 31))))
    store_and_publish(quarters(meter, local(dt.date(2026, 10, 24)), local(dt.date(2026, 10, 27))))

    result = rollups.rollups_follow(consumer="test")

    assert result.batches == 2
    march = selectors.daily_usage(meter_pk=meter, start=dt.date(2026, 3, 28), end=dt.date(2026, 3, 31))
    assert [(d.hours, d.import_kwh, d.missing_intervals) for d in march] == [
        (24, 24.0, 0),
        (23, 23.0, 0),
        (24, 24.0, 0),
    ]
    october = selectors.daily_usage(meter_pk=meter, start=dt.date(2026, 10, 24), end=dt.date(2026, 10, 27))
    assert [(d.hours, d.import_kwh) for d in october] == [(24, 24.0), (25, 25.0), (24, 24.0)]
    hours = selectors.hourly_usage(meter_pk=meter, start=local(dt.date(2026, 10, 25)), end=local(dt.date(2026, 10, 26)))
    assert len(hours) == 25
    assert all(h.import_kwh == 1.0 for h in hours)
    # The repeated local hour 02:00 appears twice, once in summer time and once in winter time.
    assert [h.hour_start.strftime("%H%z") for h in hours[2:4]] == ["02+0200", "02+0100"]


def test_late_reading_recomputes_only_its_day(alice: Any, mongo: Any, clean_stream: Any) -> None:
    meter = alice.meter.pk
    documents = quarters(meter, local(dt.date(2026, 11, 1)), local(dt.date(2026, 11, 4)))
    late = documents.pop(150)  # 2 November, 13:30
    store_and_publish(documents)
    rollups.rollups_follow(consumer="test")
    before = {d["day"]: d for d in collection(ROLLUPS_DAILY).find({"meter": meter})}
    assert before["2026-11-02"]["total_import_kwh"] == 23.75

    store_and_publish([late])
    rollups.rollups_follow(consumer="test")

    after = {d["day"]: d for d in collection(ROLLUPS_DAILY).find({"meter": meter})}
    assert after["2026-11-02"]["total_import_kwh"] == 24.0
    assert after["2026-11-02"]["computed_at"] > before["2026-11-02"]["computed_at"]
    for untouched in ("2026-11-01", "2026-11-03"):
        assert after[untouched]["computed_at"] == before[untouched]["computed_at"]


def test_interval_ending_at_midnight_belongs_to_the_day_before(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    insert_readings(quarters(meter, local(dt.date(2026, 11, 1)) - QUARTER, local(dt.date(2026, 11, 1))))
    rollups.rollups_recompute(meter_pks=[meter], first_day=dt.date(2026, 10, 31), end_day=dt.date(2026, 11, 2))

    days = selectors.daily_usage(meter_pk=meter, start=dt.date(2026, 10, 31), end=dt.date(2026, 11, 2))

    assert [d.import_kwh for d in days] == [0.25, 0.0]


def test_max_demand_is_the_highest_quarter_hour_average_in_kw(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    documents = quarters(meter, local(dt.date(2026, 11, 2)), local(dt.date(2026, 11, 3)))
    documents[70]["energy_import_kwh"] = 2.0  # 17:30-17:45 local: 8 kW
    insert_readings(documents)
    rollups.rollups_recompute(meter_pks=[meter], first_day=dt.date(2026, 11, 2), end_day=dt.date(2026, 11, 3))

    (day,) = selectors.daily_usage(meter_pk=meter, start=dt.date(2026, 11, 2), end=dt.date(2026, 11, 3))

    assert day.max_demand_kw == 8.0
    assert day.max_demand_at is not None
    assert day.max_demand_at.strftime("%H:%M") == "17:45"


def test_missing_intervals_are_counted_and_a_day_without_data_is_all_missing(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    documents = quarters(meter, local(dt.date(2026, 11, 2)), local(dt.date(2026, 11, 3)))
    insert_readings(documents[:90])
    rollups.rollups_recompute(meter_pks=[meter], first_day=dt.date(2026, 11, 2), end_day=dt.date(2026, 11, 4))

    days = selectors.daily_usage(meter_pk=meter, start=dt.date(2026, 11, 2), end=dt.date(2026, 11, 4))

    assert [d.missing_intervals for d in days] == [6, 96]


def test_rebuild_rollups_command_backfills_every_meter(alice: Any, bob: Any, mongo: Any) -> None:
    for person in (alice, bob):
        insert_readings(quarters(person.meter.pk, local(dt.date(2026, 11, 1)), local(dt.date(2026, 11, 3))))

    call_command("rebuild_rollups", "--from", "2026-11-01", "--to", "2026-11-03")

    usage = selectors.usage_for_billing(
        meter_pks=[alice.meter.pk, bob.meter.pk], start=local(dt.date(2026, 11, 1)), end=local(dt.date(2026, 11, 3))
    )
    assert {pk: round(sum(h.import_kwh for h in hours), 6) for pk, hours in usage.items()} == {
        alice.meter.pk: 48.0,
        bob.meter.pk: 48.0,
    }
    assert all(len(hours) == 48 for hours in usage.values())


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    duplicated=st.lists(st.integers(min_value=0, max_value=95), max_size=30),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_duplicates_and_shuffles_never_change_rollups(alice: Any, mongo: Any, duplicated: list[int], seed: int) -> None:
    meter = alice.meter.pk
    day = dt.date(2026, 3, 29)  # the spring-forward day: 92 intervals
    base = quarters(meter, local(day), local(day + dt.timedelta(days=1)), kwh=0.3)
    for n, document in enumerate(base):
        document["energy_import_kwh"] = 0.1 + (n % 7) / 10
    collection("readings").delete_many({})
    insert_readings(base)
    rollups.rollups_recompute(meter_pks=[meter], first_day=day, end_day=day + dt.timedelta(days=1))
    expected = collection(ROLLUPS_DAILY).find_one({"meter": meter}, {"_id": 0, "computed_at": 0})

    copies = [dict(base[i % len(base)], received_at=base[0]["received_at"] + dt.timedelta(hours=1)) for i in duplicated]
    shuffled = [dict(document) for document in base] + copies
    random.Random(seed).shuffle(shuffled)
    collection("readings").delete_many({})
    collection("readings").insert_many(shuffled)
    rollups.rollups_recompute(meter_pks=[meter], first_day=day, end_day=day + dt.timedelta(days=1))

    assert collection(ROLLUPS_DAILY).find_one({"meter": meter}, {"_id": 0, "computed_at": 0}) == expected
