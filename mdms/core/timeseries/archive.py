"""Raw readings and events by time range, for the data lake: streamed reads, range deletion, restore.

The lake (lake) archives each local day of raw data to Parquet and, once a day is verified
there, removes it from MongoDB; a backfill reads it back. This module is its only way into MongoDB.

Which rows a day holds. A reading is an interval named by its end, and belongs to the day that
contains its start: a day [start, end) holds the readings with start < ts <= end (the rule of the
rollups, for any interval length that divides a day). An event is an instant: start <= ts < end.

Duplicates. Reads here dedupe as every other read does: one reading per (meter, ts), the first
received (`readings._first_received`), one event per (meter, ts, type), the first received. The
lake holds exactly what a chart or a rollup reads; the dropped copies never counted anywhere.

Deleting a range. MongoDB 6.0 refuses a delete on a time-series collection that filters on
anything but the metaField ("Cannot perform an update or delete on a time-series collection when
querying on a field that is not the metaField"), so a range is removed bucket by bucket, through
the collection's `system.buckets.<name>`: every bucket that may hold a row of the range goes, and
the rows of those buckets that lie outside the range are stored again (same _id, same
received_at, so the first-received rule picks the same copy). They are stored again only after
their buckets are gone (MongoDB would otherwise append them to a bucket still open in its
catalog, the very one being deleted), so they are first parked in `archive_staging`, and
whatever a crash leaves parked is stored again by the next deletion (replay_staged): a crash
may leave a duplicate, which reads ignore, and never loses a row. Buckets of "minutes"
granularity span up to a day, so removing one day rewrites up to a day of its neighbours; removing a run of
consecutive days at once rewrites only the run's two edges.

Restoring. Documents read back from the lake are inserted unless the same copy (meter, ts
[, type], received_at) is already stored, so running a restore twice stores each row once.
Restored rows are not handed on through the stored-batches stream: they were when first stored
(rollups, detection and outages have seen them, and the rollups were kept), and replaying them
would have the outage follower reopen year-old incidents from old last gasps. The caller that
needs rollups recomputed from them (rebuild_rollups) does so itself.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import pymongo.errors

from mdms.core.timeseries import EVENTS, READINGS, collection, db
from mdms.core.timeseries.readings import _first_received

Kind = Literal["readings", "events"]
KINDS: tuple[Kind, ...] = ("readings", "events")
_COLLECTIONS: dict[Kind, str] = {"readings": READINGS, "events": EVENTS}

# A day of 10,000 meters is read in queries of this many meters (about 48,000 readings of
# 15 minutes): each uses the (meter, ts) index, and Python never holds more than one at a time.
METERS_PER_QUERY = 500
# Rows inserted or bucket ids deleted per round trip.
WRITE_BATCH = 10_000
# A regular collection where a range deletion parks the rows it must store again (see _rewrite).
ARCHIVE_STAGING = "archive_staging"


def day_range_match(kind: Kind, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The `ts` condition of the rows a local day [start, end) holds (see the module docstring)."""
    if kind == "readings":
        return {"ts": {"$gt": start, "$lte": end}}
    return {"ts": {"$gte": start, "$lt": end}}


def _in_range(kind: Kind, ts: dt.datetime, start: dt.datetime, end: dt.datetime) -> bool:
    return start < ts <= end if kind == "readings" else start <= ts < end


def meters_in_range(kind: Kind, start: dt.datetime, end: dt.datetime) -> list[int]:
    return sorted(collection(_COLLECTIONS[kind]).distinct("meter", day_range_match(kind, start, end)))


def _deduped_pipeline(kind: Kind, match: dict[str, Any], fields: Sequence[str] | None) -> list[dict[str, Any]]:
    if kind == "readings":
        first = _first_received(match)
    else:
        first = [
            {"$match": match},
            {"$sort": {"meter": 1, "ts": 1, "received_at": 1, "_id": 1}},
            {"$group": {"_id": {"meter": "$meter", "ts": "$ts", "type": "$type"}, "doc": {"$first": "$$ROOT"}}},
            {"$replaceRoot": {"newRoot": "$doc"}},
        ]
    order = {"meter": 1, "ts": 1} if kind == "readings" else {"meter": 1, "ts": 1, "type": 1}
    projection: dict[str, Any] = {"_id": 0}
    if fields is not None:
        projection.update({"meter": 1, "ts": 1, **dict.fromkeys(fields, 1)})
    return [*first, {"$sort": order}, {"$project": projection}]


def deduped_batches(
    kind: Kind,
    start: dt.datetime,
    end: dt.datetime,
    *,
    fields: Sequence[str] | None = None,
    meters_per_query: int = METERS_PER_QUERY,
) -> Iterator[list[dict[str, Any]]]:
    """The day's rows, deduped, by meter then ts, in lists of the rows of up to `meters_per_query` meters.

    `fields`: only these besides meter and ts (verification needs the energies alone).
    """
    meters = meters_in_range(kind, start, end)
    range_match = day_range_match(kind, start, end)
    for offset in range(0, len(meters), meters_per_query):
        chunk = meters[offset : offset + meters_per_query]
        pipeline = _deduped_pipeline(kind, {"meter": {"$in": chunk}, **range_match}, fields)
        rows = list(collection(_COLLECTIONS[kind]).aggregate(pipeline, allowDiskUse=True))
        if rows:
            yield rows


def oldest_ts(kind: Kind) -> dt.datetime | None:
    """The earliest time stored, from the buckets' lower bounds (rounded down to the hour).

    There is no index on the time alone; the buckets are about 1/100 of the rows, so this scan is
    affordable for what uses it: the lake's first catch-up, once.
    """
    buckets = db()[f"system.buckets.{_COLLECTIONS[kind]}"]
    first = buckets.find({}, {"control.min.ts": 1}).sort("control.min.ts", 1).limit(1)
    for bucket in first:
        return bucket["control"]["min"]["ts"]  # type: ignore[no-any-return]
    return None


def _overlapping_buckets(name: str, low: dt.datetime, high: dt.datetime) -> dict[Any, list[dict[str, Any]]]:
    """Per meter, the buckets whose [control.min.ts, control.max.ts] meets [low, high]."""
    buckets = db()[f"system.buckets.{name}"]
    query = {"control.min.ts": {"$lte": high}, "control.max.ts": {"$gte": low}}
    found: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for bucket in buckets.find(query, {"meta": 1, "control.min.ts": 1, "control.max.ts": 1}):
        found[bucket.get("meta")].append(
            {"_id": bucket["_id"], "min": bucket["control"]["min"]["ts"], "max": bucket["control"]["max"]["ts"]}
        )
    return found


def delete_range(
    kind: Kind, start: dt.datetime, end: dt.datetime, *, day_of: Callable[[dt.datetime], Any] = lambda ts: None
) -> Counter[Any]:
    """Remove every stored copy of the rows of [start, end) (a day or a run of days).

    Returns how many copies went, by `day_of(ts)` (the caller's local day).

    See the module docstring for why this goes through the buckets, and why it is safe to retry.
    Meant for old data nothing writes to any more (the lake's tiering); a row inserted into one
    of the affected buckets while this runs could be lost.
    """
    name = _COLLECTIONS[kind]
    # The buckets that may hold a row of the range, then per meter the closure: every bucket that
    # meets the span of that meter's buckets, so that the span's rows are exactly theirs.
    by_meter = _overlapping_buckets(name, start, end)
    if not by_meter:
        return Counter()
    windows: dict[Any, tuple[dt.datetime, dt.datetime]] = {}
    for meter, buckets in by_meter.items():
        windows[meter] = (min(b["min"] for b in buckets), max(b["max"] for b in buckets))
    while True:
        low = min(w[0] for w in windows.values())
        high = max(w[1] for w in windows.values())
        wider = _overlapping_buckets(name, low, high)
        grown = False
        for meter, (w_low, w_high) in list(windows.items()):
            meets = [b for b in wider.get(meter, []) if b["min"] <= w_high and b["max"] >= w_low]
            new = (min([w_low, *(b["min"] for b in meets)]), max([w_high, *(b["max"] for b in meets)]))
            if new != (w_low, w_high):
                windows[meter], grown = new, True
            by_meter[meter] = meets
        if not grown:
            break
    replay_staged()
    deleted: Counter[Any] = Counter()
    meters = sorted(windows, key=lambda m: (m is None, m))
    for offset in range(0, len(meters), METERS_PER_QUERY):
        chunk = meters[offset : offset + METERS_PER_QUERY]
        low = min(windows[m][0] for m in chunk)
        high = max(windows[m][1] for m in chunk)
        keepers: list[dict[str, Any]] = []
        for document in collection(name).find({"meter": {"$in": chunk}, "ts": {"$gte": low, "$lte": high}}):
            w_low, w_high = windows[document.get("meter")]
            if not w_low <= document["ts"] <= w_high:
                continue  # in another bucket of this meter, which stays as it is
            if _in_range(kind, document["ts"], start, end):
                deleted[day_of(document["ts"])] += 1
            else:
                keepers.append(document)
        bucket_ids = [b["_id"] for meter in chunk for b in by_meter[meter]]
        _rewrite(name, bucket_ids, keepers)
    return deleted


def _rewrite(name: str, bucket_ids: list[Any], keepers: list[dict[str, Any]]) -> None:
    """Drop these buckets and store `keepers` again, without a window in which a crash loses them.

    The keepers are inserted after the buckets are gone, never before: MongoDB would append them
    to a bucket still open in its catalog, the very one about to be deleted. So they are staged
    in a regular collection first, and a later run replays whatever a crash left staged.
    """
    staging = collection(ARCHIVE_STAGING)
    staged_ids: list[Any] = []
    for offset in range(0, len(keepers), WRITE_BATCH):
        part = keepers[offset : offset + WRITE_BATCH]
        staged_ids += staging.insert_many([{"collection": name, "document": doc} for doc in part]).inserted_ids
    buckets = db()[f"system.buckets.{name}"]
    for offset in range(0, len(bucket_ids), WRITE_BATCH):
        buckets.delete_many({"_id": {"$in": bucket_ids[offset : offset + WRITE_BATCH]}})
    for offset in range(0, len(keepers), WRITE_BATCH):
        _insert_plain(name, keepers[offset : offset + WRITE_BATCH])
    for offset in range(0, len(staged_ids), WRITE_BATCH):
        staging.delete_many({"_id": {"$in": staged_ids[offset : offset + WRITE_BATCH]}})


def replay_staged() -> int:
    """Store again the rows a crashed range deletion left staged (skipping those already back)."""
    staging = collection(ARCHIVE_STAGING)
    replayed = 0
    for kind, name in _COLLECTIONS.items():
        while True:
            staged = list(staging.find({"collection": name}).limit(WRITE_BATCH))
            if not staged:
                break
            replayed += insert_restored(kind, [entry["document"] for entry in staged], keep_ids=True)
            staging.delete_many({"_id": {"$in": [entry["_id"] for entry in staged]}})
    return replayed


def _insert_plain(name: str, documents: Sequence[dict[str, Any]]) -> int:
    if not documents:
        return 0
    ordered = sorted(documents, key=lambda d: (d.get("meter"), d["ts"]))
    try:
        return len(collection(name).insert_many(ordered, ordered=False).inserted_ids)
    except pymongo.errors.BulkWriteError as exc:
        if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
            raise
        return int(exc.details.get("nInserted", 0))


def _copy_key(kind: Kind, document: dict[str, Any]) -> tuple[Any, ...]:
    if kind == "readings":
        return (document["meter"], document["ts"], document.get("received_at"))
    return (document["meter"], document["ts"], document.get("type"), document.get("received_at"))


def insert_restored(kind: Kind, documents: Sequence[dict[str, Any]], *, keep_ids: bool = False) -> int:
    """Store documents read back from the lake, skipping those whose same copy is already stored.

    A copy is the same when (meter, ts[, type], received_at) match: a restore run twice stores
    each row once, and a later copy that arrived meanwhile does not hide the original (the
    original was received first, so it is the one every read takes).
    """
    if not documents:
        return 0
    name = _COLLECTIONS[kind]
    wanted: dict[int, set[dt.datetime]] = defaultdict(set)
    for document in documents:
        wanted[document["meter"]].add(document["ts"])
    clauses = [{"meter": pk, "ts": {"$in": sorted(times)}} for pk, times in wanted.items()]
    stored: set[tuple[Any, ...]] = set()
    projection = {"_id": 0, "meter": 1, "ts": 1, "type": 1, "received_at": 1}
    for offset in range(0, len(clauses), METERS_PER_QUERY):
        for existing in collection(name).find({"$or": clauses[offset : offset + METERS_PER_QUERY]}, projection):
            stored.add(_copy_key(kind, existing))
    missing = [document for document in documents if _copy_key(kind, document) not in stored]
    if not keep_ids:
        missing = [{key: value for key, value in document.items() if key != "_id"} for document in missing]
    inserted = 0
    for offset in range(0, len(missing), WRITE_BATCH):
        inserted += _insert_plain(name, missing[offset : offset + WRITE_BATCH])
    return inserted
