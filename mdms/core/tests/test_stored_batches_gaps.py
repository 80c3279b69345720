"""Gaps in the stored-batches stream: a follower catches up from MongoDB, from its durable watermark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from mdms.core import stored_batches
from mdms.core.timeseries import followers
from mdms.core.timeseries.readings import insert_events, insert_readings, reading_document

GROUP = "gap-test"


def now() -> dt.datetime:
    """The time of the test itself (a module constant would be minutes old when a long suite gets here,
    older than the watermark's slack)."""
    return dt.datetime.now(tz=dt.UTC).replace(microsecond=0)


@pytest.fixture
def stream(mongo: Any) -> Iterator[Any]:
    connection = stored_batches.connection()
    connection.delete(stored_batches.STREAM)
    yield connection
    connection.delete(stored_batches.STREAM)


def store(meter_pk: int, count: int, *, received_at: dt.datetime) -> None:
    base = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    documents = [
        reading_document(
            meter_pk=meter_pk,
            ts=base + dt.timedelta(minutes=15 * (n + 1)),
            received_at=received_at,
            values={"energy_import_kwh": 0.1},
            interval_s=900,
        )
        for n in range(count)
    ]
    insert_readings(documents)
    stored_batches.publish(
        kind="readings",
        meter_pks=[meter_pk],
        min_ts=documents[0]["ts"],
        max_ts=documents[-1]["ts"],
        count=count,
    )


def follow(consumer: str = "c") -> list[tuple[str, stored_batches.StoredBatch]]:
    entries = stored_batches.take(GROUP, consumer)
    stored_batches.done(GROUP, [entry_id for entry_id, _ in entries])
    return entries


def test_a_new_follower_starts_with_the_stream_and_gets_a_watermark(stream: Any) -> None:
    store(1, 4, received_at=now())

    entries = follow()

    assert [batch.meter_pks for _, batch in entries] == [(1,)]
    mark = followers.watermark(GROUP)
    assert mark is not None and mark.gap_since is None
    assert mark.at <= dt.datetime.now(tz=dt.UTC) - stored_batches.WATERMARK_SLACK


def test_a_stream_lost_with_redis_is_made_up_from_what_mongodb_received_since_the_watermark(stream: Any) -> None:
    store(1, 4, received_at=now())
    follow()
    # Stored and handed on, then Redis restarts empty before the follower read it.
    store(2, 8, received_at=now())
    insert_events([{"meter": 3, "ts": now(), "type": "power_off", "received_at": now()}])
    stream.delete(stored_batches.STREAM)

    entries = stored_batches.take(GROUP, "c")

    assert all(entry_id.startswith(stored_batches.GAP_PREFIX) for entry_id, _ in entries)
    readings = [batch for _, batch in entries if batch.kind == "readings"]
    assert {pk for batch in readings for pk in batch.meter_pks} == {1, 2}  # the slack covers meter 1 again
    assert sum(batch.count for batch in readings) == 12
    assert [batch.meter_pks for _, batch in entries if batch.kind == "events"] == [(3,)]


def test_a_gap_stays_open_until_its_entries_are_done(stream: Any) -> None:
    store(1, 4, received_at=now())
    follow()
    stream.delete(stored_batches.STREAM)

    first = stored_batches.take(GROUP, "c")  # the follower crashes before done
    again = stored_batches.take(GROUP, "c")
    stored_batches.done(GROUP, [entry_id for entry_id, _ in again])

    assert first and [entry_id for entry_id, _ in first] == [entry_id for entry_id, _ in again]
    mark = followers.watermark(GROUP)
    assert mark is not None and mark.gap_since is None
    store(2, 1, received_at=now())
    assert [batch.meter_pks for _, batch in follow()] == [(2,)]  # back to the stream


def test_entries_trimmed_before_the_follower_read_them_are_made_up(stream: Any) -> None:
    store(1, 4, received_at=now())
    follow()
    store(2, 4, received_at=now())
    store(3, 4, received_at=now())
    stream.xtrim(stored_batches.STREAM, maxlen=0, approximate=False)  # fell more than MAXLEN behind

    entries = follow()

    assert all(entry_id.startswith(stored_batches.GAP_PREFIX) for entry_id, _ in entries)
    assert {pk for _, batch in entries for pk in batch.meter_pks} == {1, 2, 3}
    store(4, 1, received_at=now())
    assert [batch.meter_pks for _, batch in follow()] == [(4,)]  # the group was moved past the trimmed ones


def test_the_watermark_stays_behind_an_entry_still_pending(stream: Any) -> None:
    store(1, 1, received_at=now())
    pending = stored_batches.take(GROUP, "crashed")  # taken by a consumer that died
    store(2, 1, received_at=now())
    later = stored_batches.take(GROUP, "alive")
    stored_batches.done(GROUP, [entry_id for entry_id, _ in later])

    mark = followers.watermark(GROUP)
    oldest = stored_batches._entry_time(pending[0][0])
    assert mark is not None and mark.at <= oldest - stored_batches.WATERMARK_SLACK
