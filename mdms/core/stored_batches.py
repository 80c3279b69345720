"""The hand-off from ingest to the jobs that follow it: which meters and time range each stored batch touched.

Change streams cannot watch a time-series collection (MongoDB 6.0 answers error 166), so the
ingest appends one entry per stored batch to a Redis stream, and each follower (rollups, anomaly
detection, outage restore) reads it through a consumer group of its own: nothing is scanned twice
and nothing is missed, and an entry a crashed follower took is claimed again after a while.

Entry fields: kind ("readings" or "events"), meters (comma-separated Meter.pk), min_ts and max_ts
(ISO 8601, UTC, interval ends), count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings

STREAM = "mdms:stored-batches"
# About a day of entries at 10 batches a second; a follower further behind than that has missed
# data and must backfill (its watermark says from when).
MAXLEN = 1_000_000
# An entry taken by a follower that died is given to another after this long without a heartbeat
# (a live follower resets its entries' idle time while it works: mdms.core.followers).
CLAIM_IDLE_MS = 60_000


@dataclass(frozen=True)
class StoredBatch:
    kind: str
    meter_pks: tuple[int, ...]
    min_ts: dt.datetime
    max_ts: dt.datetime
    count: int


@cache
def _connection(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def connection() -> redis.Redis:
    return _connection(settings.REDIS_URL)


def publish(
    *,
    kind: str,
    meter_pks: Iterable[int],
    min_ts: dt.datetime,
    max_ts: dt.datetime,
    count: int,
    pipe: redis.client.Pipeline | None = None,
) -> None:
    """Append one entry; on pipe when given (the caller executes it), else at once."""
    pks = sorted(set(meter_pks))
    (pipe if pipe is not None else connection()).xadd(
        STREAM,
        {
            "kind": kind,
            "meters": ",".join(str(pk) for pk in pks),
            "min_ts": min_ts.astimezone(dt.UTC).isoformat(),
            "max_ts": max_ts.astimezone(dt.UTC).isoformat(),
            "count": str(count),
        },
        maxlen=MAXLEN,
        approximate=True,
    )


def _parse(fields: dict[str, str]) -> StoredBatch:
    return StoredBatch(
        kind=fields["kind"],
        meter_pks=tuple(int(pk) for pk in fields["meters"].split(",") if pk),
        min_ts=dt.datetime.fromisoformat(fields["min_ts"]),
        max_ts=dt.datetime.fromisoformat(fields["max_ts"]),
        count=int(fields.get("count", 0)),
    )


def _ensure_group(group: str) -> None:
    try:
        # "0": a new follower starts with what the stream still holds.
        connection().xgroup_create(STREAM, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def take(
    group: str, consumer: str, *, count: int = 500, min_idle_ms: int = CLAIM_IDLE_MS
) -> list[tuple[str, StoredBatch]]:
    """Up to `count` entries for this follower: first ones a dead consumer left, then new ones.

    Nothing blocks: a periodic job takes what is there and returns. An entry is left to its taker
    while the taker's heartbeat keeps it younger than `min_idle_ms`.
    """
    _ensure_group(group)
    client = connection()
    claimed: Any = client.xautoclaim(STREAM, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count)
    entries: list[Any] = list(claimed[1])
    if len(entries) < count:
        fresh: Any = client.xreadgroup(group, consumer, {STREAM: ">"}, count=count - len(entries))
        for _stream, messages in fresh or []:
            entries.extend(messages)
    return [(entry_id, _parse(fields)) for entry_id, fields in entries if fields]


def done(group: str, entry_ids: Iterable[str]) -> None:
    """Acknowledge entries once their work is stored; until then a crash means they are redone."""
    ids = list(entry_ids)
    if ids:
        connection().xack(STREAM, group, *ids)


def backlog(group: str) -> int:
    """Entries not yet taken by this follower, plus those taken and not done (for health pages)."""
    _ensure_group(group)
    info: Any = connection().xinfo_groups(STREAM)
    for entry in info:
        if entry["name"] == group:
            return int(entry.get("lag") or 0) + int(entry.get("pending") or 0)
    return 0


# unfinished() reads at most this many entries: beyond, a follower is too far behind to say which
# meters it still owes, and callers treat every meter as not caught up.
UNFINISHED_SCAN = 200_000
_SCAN_PAGE = 5_000


def unfinished(group: str, *, limit: int = UNFINISHED_SCAN) -> tuple[list[StoredBatch], bool]:
    """The entries this follower has not finished: taken and not acknowledged, or not yet taken.

    Returns (batches, complete); complete is False when more than `limit` entries wait, and the
    list is then only their first part. What a follower owes is exactly these: every batch stored
    before them is done (a "watermark" on the stream, per meter and time range).
    """
    _ensure_group(group)
    client = connection()
    last_delivered = "0-0"
    info: Any = client.xinfo_groups(STREAM)
    for entry in info:
        if entry["name"] == group:
            last_delivered = str(entry.get("last-delivered-id") or "0-0")
    batches: list[StoredBatch] = []
    pending: Any = client.xpending_range(STREAM, group, min="-", max="+", count=limit)
    if pending:
        pipe = client.pipeline(transaction=False)
        for item in pending:
            pipe.xrange(STREAM, item["message_id"], item["message_id"])
        for found in pipe.execute():
            batches.extend(_parse(fields) for _entry_id, fields in found if fields)
    start = f"({last_delivered}"
    while len(batches) <= limit:
        page: Any = client.xrange(STREAM, min=start, max="+", count=_SCAN_PAGE)
        if not page:
            return batches, True
        batches.extend(_parse(fields) for _entry_id, fields in page if fields)
        start = f"({page[-1][0]}"
    return batches, False
