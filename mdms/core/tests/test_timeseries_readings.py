"""Raw readings in MongoDB: ObjectIds made in bulk (unique, ordered, never repeated by a fork), newest times."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from typing import Any

from mdms.core.timeseries import readings


def test_ids_of_one_batch_and_the_next_are_unique_and_ordered() -> None:
    ids = readings._ObjectIds()
    first, second = ids.take(5000), ids.take(5000)
    together = first + second
    assert len(set(together)) == 10_000
    # Within one second the counter orders them (a wrap at 2**24 restarts it, far beyond a batch).
    same_second = [oid for oid in together if oid.generation_time == together[0].generation_time]
    counters = [int.from_bytes(oid.binary[9:], "big") for oid in same_second]
    assert all((b - a) % 0x1000000 == 1 for a, b in itertools.pairwise(counters))


def test_a_new_process_gets_new_random_bytes() -> None:
    ids = readings._ObjectIds()
    parent = ids.take(1)[0]
    ids._pid = os.getpid() + 1  # as a forked child finds it
    child = ids.take(1)[0]
    assert parent.binary[4:9] != child.binary[4:9]


def test_stored_readings_carry_the_ids_and_keep_one_given(mongo: Any) -> None:
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    given = readings._ObjectIds().take(1)[0]
    documents = [
        {"meter": 1, "ts": now, "received_at": now, "energy_import_kwh": 0.5, "_id": given},
        {"meter": 1, "ts": now + dt.timedelta(minutes=15), "received_at": now, "energy_import_kwh": 0.6},
    ]
    assert readings.insert_readings(documents) == 2
    stored = {doc["_id"] for doc in mongo["readings"].find({}, {"_id": 1})}
    assert given in stored and len(stored) == 2


def test_newest_reading_time_per_meter_from_the_buckets(mongo: Any) -> None:
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    documents = []
    # Meter 1: 40 days (many buckets), out of order; meter 2: one reading; meter 3: none.
    for k in reversed(range(40 * 24)):
        documents.append({"meter": 1, "ts": start + dt.timedelta(hours=k), "received_at": start, "power_w": 1.0})
    documents.append({"meter": 2, "ts": start + dt.timedelta(minutes=15), "received_at": start, "power_w": 1.0})
    readings.insert_readings(documents)
    newest = readings.newest_ts_by_meter([1, 2, 3])
    assert newest == {1: start + dt.timedelta(hours=40 * 24 - 1), 2: start + dt.timedelta(minutes=15)}
    assert newest[1].tzinfo is not None
