"""The hand-off from ingest to the jobs that follow it: which meters and time range each stored batch touched.

Change streams cannot watch a time-series collection (MongoDB 6.0 answers error 166), so the
ingest appends one entry per stored batch to a Redis stream, and each follower (rollups, anomaly
detection, outage restore) reads it through a consumer group of its own: nothing is scanned twice
and nothing is missed, and an entry a crashed follower took is claimed again after a while.

Entry fields: kind ("readings" or "events"), meters (comma-separated Meter.pk), min_ts and max_ts
(ISO 8601, UTC, interval ends), count.

Redis keeps the stream in memory only, so entries can be lost: Redis restarts empty (the stream and
its groups are gone), or a follower falls more than MAXLEN entries behind. Each follower therefore
keeps a watermark in MongoDB (mdms.core.timeseries.followers): every reading received more than
WATERMARK_SLACK before its oldest entry not yet done has been done. When `take` finds a gap (its
group had to be created again while it has a watermark, or entries it never read were trimmed), it
first hands out what MongoDB received since the watermark, as entries of the same shape with ids
"gap:...". A lost stream costs the followers a scan, never a reading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings

from mdms.core.timeseries import followers

STREAM = "mdms:stored-batches"
# About a day of entries at 10 batches a second; a follower further behind than that has missed
# data and must backfill (its watermark says from when).
MAXLEN = 1_000_000
# An entry taken by a follower that died is given to another after this long without a heartbeat
# (a live follower resets its entries' idle time while it works: mdms.core.followers).
CLAIM_IDLE_MS = 60_000
# A reading's received_at is taken when the worker receives it; its entry is appended once its batch
# is stored, seconds later (minutes while MongoDB fails over and the batch is retried), and the
# entry id is Redis's clock. The watermark stays this far behind the entries done, to cover that
# delay and clock differences between hosts.
WATERMARK_SLACK = dt.timedelta(minutes=5)
GAP_PREFIX = "gap:"


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


def publish_stored(
    kind: str, documents: Sequence[Mapping[str, Any]], *, pipe: redis.client.Pipeline | None = None
) -> None:
    """Append the entry that describes these stored documents (each with its `meter` and `ts`)."""
    publish(
        kind=kind,
        meter_pks=(doc["meter"] for doc in documents),
        min_ts=min(doc["ts"] for doc in documents),
        max_ts=max(doc["ts"] for doc in documents),
        count=len(documents),
        pipe=pipe,
    )


def _parse(fields: dict[str, str]) -> StoredBatch:
    return StoredBatch(
        kind=fields["kind"],
        meter_pks=tuple(int(pk) for pk in fields["meters"].split(",") if pk),
        min_ts=dt.datetime.fromisoformat(fields["min_ts"]),
        max_ts=dt.datetime.fromisoformat(fields["max_ts"]),
        count=int(fields.get("count", 0)),
    )


def _entry_time(entry_id: str) -> dt.datetime:
    """When Redis appended the entry: the first part of its id is Redis's clock in milliseconds."""
    return dt.datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, tz=dt.UTC)


def _ensure_group(group: str) -> None:
    """Create the group if missing. A group missing while its follower has a watermark means the
    stream was lost (Redis restarted empty): the gap since the watermark is recorded, durably."""
    try:
        # "0": a new follower starts with what the stream still holds.
        connection().xgroup_create(STREAM, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return
    if followers.gap_open(group) is None:
        # A new follower: what it must cover starts with what the stream still holds.
        oldest: Any = connection().xrange(STREAM, count=1)
        start = _entry_time(oldest[0][0]) if oldest else dt.datetime.now(tz=dt.UTC)
        followers.watermark_start(group, at=start - WATERMARK_SLACK)


def _trimmed_unread(group: str) -> bool:
    """Were entries this group never read trimmed away (it fell more than MAXLEN behind)?

    Trimming removes the oldest entries. Redis 7 counts the entries ever added to the stream and
    those each group has read: if more were added after the group's last read than the stream
    still holds after it, the difference was trimmed unread. The group is then set to read what
    the stream still holds, and the caller scans MongoDB for the rest.
    """
    client = connection()
    stream: Any = client.xinfo_stream(STREAM)
    groups: Any = client.xinfo_groups(STREAM)
    mine = next((g for g in groups if g["name"] == group), None)
    added, read = stream.get("entries-added"), mine.get("entries-read") if mine else None
    if mine is None or added is None or read is None:
        return False  # Redis before 7, or a count Redis itself no longer knows: nothing to compare
    first = stream.get("first-entry")
    if first is not None and _id_key(str(first[0])) <= _id_key(str(mine["last-delivered-id"])):
        return False  # the stream still holds the group's last read entry: nothing unread was trimmed
    length = int(stream.get("length") or 0)
    if int(added) - int(read) <= length:
        return False
    client.xgroup_setid(STREAM, group, id="0", entries_read=int(added) - length)
    return True


def _id_key(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def _gap_entries(group: str) -> list[tuple[str, StoredBatch]]:
    """The open gap of this follower as entries: what MongoDB received since its start."""
    mark = followers.watermark(group)
    if mark is None or mark.gap_since is None:
        return []
    since = mark.gap_since
    prefix = f"{GAP_PREFIX}{since.isoformat()}:"
    entries = [
        (f"{prefix}{n}", StoredBatch(r.kind, r.meter_pks, r.min_ts, r.max_ts, r.count))
        for n, r in enumerate(followers.stored_since(since))
    ]
    if not entries:  # nothing was stored meanwhile: nothing to catch up on
        followers.gap_close(group, since=since)
    return entries


def take(
    group: str, consumer: str, *, count: int = 500, min_idle_ms: int = CLAIM_IDLE_MS
) -> list[tuple[str, StoredBatch]]:
    """Up to `count` entries for this follower: after a gap, what MongoDB received since its watermark
    (all at once, whatever `count`); else first the entries a dead consumer left, then new ones.

    Nothing blocks: a periodic job takes what is there and returns. An entry is left to its taker
    while the taker's heartbeat keeps it younger than `min_idle_ms`.
    """
    _ensure_group(group)
    if _trimmed_unread(group):
        followers.gap_open(group)
    gap = _gap_entries(group)
    if gap:
        return gap
    client = connection()
    claimed: Any = client.xautoclaim(STREAM, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count)
    entries: list[Any] = list(claimed[1])
    if len(entries) < count:
        fresh: Any = client.xreadgroup(group, consumer, {STREAM: ">"}, count=count - len(entries))
        for _stream, messages in fresh or []:
            entries.extend(messages)
    return [(entry_id, _parse(fields)) for entry_id, fields in entries if fields]


def done(group: str, entry_ids: Iterable[str]) -> None:
    """Acknowledge entries once their work is stored; until then a crash means they are redone.

    Then the follower's watermark moves up to just before its oldest entry still pending (or the
    newest done), less WATERMARK_SLACK; a gap whose entries are done is closed.
    """
    ids = list(entry_ids)
    stream_ids = [entry_id for entry_id in ids if not entry_id.startswith(GAP_PREFIX)]
    for since in {entry_id[len(GAP_PREFIX) :].rpartition(":")[0] for entry_id in ids if entry_id not in stream_ids}:
        followers.gap_close(group, since=dt.datetime.fromisoformat(since))
    if not stream_ids:
        return
    client = connection()
    client.xack(STREAM, group, *stream_ids)
    newest_done = max(stream_ids, key=_id_key)
    pending: Any = client.xpending(STREAM, group)
    covered = newest_done
    if pending and pending.get("pending") and pending.get("min"):
        oldest_pending = str(pending["min"])
        if _id_key(oldest_pending) <= _id_key(covered):
            covered = oldest_pending
    followers.watermark_advance(group, at=_entry_time(covered) - WATERMARK_SLACK)


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
