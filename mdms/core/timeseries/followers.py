"""The durable side of the stored-batches followers: each one's watermark, and the scan after a gap.

The Redis stream (mdms.core.stored_batches) is fast but not durable: a Redis restart, or a follower
left behind by more than MAXLEN entries, loses entries. So each follower (consumer group) keeps,
here in MongoDB, a watermark on the readings' ingest time (`received_at`): every reading received
before it has been handed to the follower and done. After a gap in its stream the follower scans
what was stored since its watermark, so a lost stream costs time, never data.

One document per group in `follower_watermarks`: `_id` the group, `at` the watermark, and
`gap_since` while a gap is open (set when it is found, cleared when its scan is done).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mdms.core.timeseries import EVENTS, FOLLOWER_WATERMARKS, READINGS, collection

# The meters of one day go to a follower in scan batches of at most this many: a follower loads a
# batch's readings at once, and 500 meters' day is 48,000 readings.
SCAN_METERS = 500


@dataclass(frozen=True)
class Watermark:
    at: dt.datetime
    gap_since: dt.datetime | None


@dataclass(frozen=True)
class StoredRange:
    kind: str
    meter_pks: tuple[int, ...]
    min_ts: dt.datetime
    max_ts: dt.datetime
    count: int


def watermark(group: str) -> Watermark | None:
    document = collection(FOLLOWER_WATERMARKS).find_one({"_id": group})
    if document is None:
        return None
    return Watermark(at=document["at"], gap_since=document.get("gap_since"))


def watermark_start(group: str, *, at: dt.datetime) -> bool:
    """Give a new follower its first watermark; False (and nothing changes) if it has one."""
    result = collection(FOLLOWER_WATERMARKS).update_one({"_id": group}, {"$setOnInsert": {"at": at}}, upsert=True)
    return result.upserted_id is not None


def watermark_advance(group: str, *, at: dt.datetime) -> None:
    """Move the watermark forward to `at` (never back: two followers may report out of order)."""
    collection(FOLLOWER_WATERMARKS).update_one({"_id": group}, {"$max": {"at": at}}, upsert=True)


def gap_open(group: str) -> dt.datetime | None:
    """Record that this follower's stream lost entries: the scan starts at its watermark.

    An open gap stays open (its start is the earliest), so a crash before the scan is done, or a
    second loss meanwhile, still scans from the right place. Returns the gap's start, or None when
    the follower has no watermark (a new follower has nothing to catch up on).
    """
    current = watermark(group)
    if current is None:
        return None
    since = min(current.at, current.gap_since) if current.gap_since else current.at
    collection(FOLLOWER_WATERMARKS).update_one({"_id": group}, {"$set": {"gap_since": since}})
    return since


def gap_close(group: str, *, since: dt.datetime) -> None:
    """The scan of the gap that started at `since` is done (a gap opened earlier since stays open)."""
    collection(FOLLOWER_WATERMARKS).update_one({"_id": group, "gap_since": since}, {"$unset": {"gap_since": ""}})


def stored_since(since: dt.datetime) -> Iterator[StoredRange]:
    """What the ingest stored since `since` (readings and events), as ranges a follower takes like
    stream entries: per kind and UTC day of the interval ends, up to SCAN_METERS meters each.

    Uses the `received_at` index of both collections; readings and events received at or after
    `since` are all in, whatever their interval time (late data included).
    """
    for kind, name in (("readings", READINGS), ("events", EVENTS)):
        pipeline: list[dict[str, Any]] = [
            {"$match": {"received_at": {"$gte": since}}},
            {
                "$group": {
                    "_id": {"meter": "$meter", "day": {"$dateTrunc": {"date": "$ts", "unit": "day"}}},
                    "min_ts": {"$min": "$ts"},
                    "max_ts": {"$max": "$ts"},
                    "count": {"$sum": 1},
                }
            },
        ]
        by_day: dict[dt.datetime, list[dict[str, Any]]] = defaultdict(list)
        for row in collection(name).aggregate(pipeline, allowDiskUse=True):
            by_day[row["_id"]["day"]].append(row)
        for day in sorted(by_day):
            rows = sorted(by_day[day], key=lambda row: row["_id"]["meter"])
            for offset in range(0, len(rows), SCAN_METERS):
                chunk = rows[offset : offset + SCAN_METERS]
                yield StoredRange(
                    kind=kind,
                    meter_pks=tuple(int(row["_id"]["meter"]) for row in chunk),
                    min_ts=min(row["min_ts"] for row in chunk),
                    max_ts=max(row["max_ts"] for row in chunk),
                    count=sum(int(row["count"]) for row in chunk),
                )
