"""The rollup follower coalesces (issue 13): a meter-day that many stream entries touched is recomputed
once per round, not once per entry, and the follower counts what it re-read against what it was given.

Real MongoDB and Redis (the stream, the follower's totals).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from billing import rollups
from billing.tests.test_rollups import QUARTER, local, quarters, store_and_publish
from mdms.core import followers, stored_batches
from mdms.core.timeseries import rollups as rollup_store


@pytest.fixture(autouse=True)
def _paris(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Paris"


@pytest.fixture
def clean_stream() -> Any:
    client = stored_batches.connection()
    client.delete(stored_batches.STREAM, followers.COUNTS_PREFIX + rollups.GROUP)
    yield
    client.delete(stored_batches.STREAM, followers.COUNTS_PREFIX + rollups.GROUP)


def test_a_day_sent_reading_by_reading_is_recomputed_once_for_the_whole_backlog(
    alice: Any, mongo: Any, clean_stream: None
) -> None:
    meter = alice.meter.pk
    day = local(dt.date(2026, 11, 2))
    readings = quarters(meter, day, day + dt.timedelta(days=1))
    for reading in readings:  # 96 stream entries of one reading each, as a meter sending live
        store_and_publish([reading])

    # Pages of 10 entries: one round takes them all (one meter-day), and recomputes it once.
    result = rollups.rollups_follow(consumer="test", count=10, budget_s=0)

    assert (result.batches, result.meter_days, result.readings) == (96, 1, 96)
    # One recompute of a day of 96 intervals for 96 readings stored: one reading re-read per reading,
    # where recomputing per entry would have read 1 + 2 + ... + 96 = 4,656.
    assert result.reread == 96
    assert followers.counts(rollups.GROUP) == {
        "rounds": 1,
        "entries": 96,
        "readings": 96,
        "meter_days": 1,
        "reread": 96,
    }
    (document,) = rollup_store.daily_documents([meter], dt.date(2026, 11, 2), dt.date(2026, 11, 3))
    assert (document["total_import_kwh"], document["missing_intervals"]) == (24.0, 0)


def test_a_round_stops_taking_entries_at_its_meter_days(
    alice: Any, bob: Any, mongo: Any, clean_stream: None, monkeypatch: Any
) -> None:
    monkeypatch.setattr(rollups, "FOLLOW_ROUND_METER_DAYS", 2)
    first = local(dt.date(2026, 11, 2))
    # Three days of alice, then bob's first day: a round takes pages until its meter-days reach 2.
    for offset in range(3):
        store_and_publish(
            quarters(alice.meter.pk, first + dt.timedelta(days=offset), first + dt.timedelta(days=offset) + QUARTER * 4)
        )
    store_and_publish(quarters(bob.meter.pk, first, first + QUARTER * 4))

    rounds = []
    while stored_batches.backlog(rollups.GROUP):
        rounds.append(rollups.rollups_follow(consumer="test", count=1, budget_s=0).meter_days)

    assert rounds == [2, 2]
    days = {
        (d["meter"], d["day"])
        for d in rollup_store.daily_documents(
            [alice.meter.pk, bob.meter.pk], dt.date(2026, 11, 2), dt.date(2026, 11, 5)
        )
    }
    assert days == {
        (alice.meter.pk, "2026-11-02"),
        (alice.meter.pk, "2026-11-03"),
        (alice.meter.pk, "2026-11-04"),
        (bob.meter.pk, "2026-11-02"),
    }
