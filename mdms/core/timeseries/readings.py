"""Raw readings, events, replies and dead letters: how they are written, and how they are read.

Duplicates are harmless by design. MQTT delivers at least once and a time-series collection cannot
hold a unique index, so the ingest skips the exact duplicates it can see cheaply, and every read
here dedupes by (meter, ts) keeping the first received copy: a duplicate that slips through never
changes what a chart, a rollup or a bill reads. Intervals are half-open, start <= ts < end, with
ts the interval's end in UTC.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pymongo.errors
from bson import Binary, ObjectId

from mdms.core.reading_fields import READING_FIELD_NAMES
from mdms.core.reading_quality import SOURCE_MQTT, VALID
from mdms.core.timeseries import (
    DEAD_LETTERS,
    EVENTS,
    METER_REPLIES,
    READINGS,
    READINGS_METER_TS_INDEX,
    collection,
)

# A dead letter keeps the raw payload for diagnosis, up to this size (MQTT allows 256 MB).
MAX_DEAD_PAYLOAD = 64 * 1024
_READING_FIELD_SET = frozenset(READING_FIELD_NAMES)


def reading_document(
    *,
    meter_pk: int,
    ts: dt.datetime,
    received_at: dt.datetime,
    values: Mapping[str, float],
    interval_s: int | None,
    origin: str | None = None,
    quality: str | None = None,
) -> dict[str, Any]:
    """A reading as stored. `origin` is its source (mdms.core.reading_quality.SOURCES), kept only when
    it is not MQTT, the default every read assumes; `quality` a code its source gave it (a data
    hub's estimate), kept only when it said one."""
    document: dict[str, Any] = {"meter": meter_pk, "ts": ts, "received_at": received_at}
    if _READING_FIELD_SET.issuperset(values.keys()):  # the parser's readings: nothing to leave out
        document.update(values)
    else:
        document.update({name: values[name] for name in READING_FIELD_NAMES if name in values})
    if interval_s is not None:
        document["interval_s"] = interval_s
    if origin is not None and origin != SOURCE_MQTT:
        document["origin"] = origin
    if quality is not None and quality != VALID.code:
        document["quality"] = quality
    return document


def measured(document: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two copies of a reading the same reading (received_at and _id do not)."""
    return {name: document[name] for name in READING_FIELD_NAMES if name in document}


def _insert(name: str, documents: Sequence[dict[str, Any]]) -> int:
    if not documents:
        return 0
    # ordered=False: one bad document does not stop the others, and the server may parallelise.
    try:
        return len(collection(name).insert_many(list(documents), ordered=False).inserted_ids)
    except pymongo.errors.BulkWriteError as exc:
        return int(exc.details.get("nInserted", 0))


class _ObjectIds:
    """ObjectIds for a whole batch at once, made the way the ObjectId specification says (4 bytes of
    time, 5 random bytes per process, a 3-byte counter), from bytes.

    pymongo gives each document without an _id a new ObjectId(), some 2 µs of Python apiece: a sixth
    of the ingest's own cost per reading. The ids also break ties between copies of a reading
    received in the same millisecond: counted in the order stored, the earlier copy sorts first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._random = b""
        self._counter = 0

    def take(self, count: int) -> list[ObjectId]:
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not repeat its parent's ids
                self._pid, self._random, self._counter = os.getpid(), os.urandom(5), secrets.randbits(24)
            start = self._counter
            self._counter = (start + count) % 0x1000000
        prefix = struct.pack(">I", int(time.time())) + self._random
        return [ObjectId(prefix + ((start + n) % 0x1000000).to_bytes(3, "big")) for n in range(count)]


_object_ids = _ObjectIds()


def insert_readings(documents: Sequence[dict[str, Any]]) -> int:
    """Store readings, best in time order per meter (bucket inserts stay appends)."""
    ordered = sorted(documents, key=lambda d: (d["meter"], d["ts"]))
    missing = [document for document in ordered if "_id" not in document]
    for document, object_id in zip(missing, _object_ids.take(len(missing)), strict=True):
        document["_id"] = object_id
    return _insert(READINGS, ordered)


def insert_events(documents: Sequence[dict[str, Any]]) -> int:
    return _insert(EVENTS, documents)


def insert_replies(documents: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Store replies; (inserted, duplicates). The unique (meter, id) index turns a resend into a no-op."""
    if not documents:
        return 0, 0
    try:
        inserted = len(collection(METER_REPLIES).insert_many(list(documents), ordered=False).inserted_ids)
        return inserted, 0
    except pymongo.errors.BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != 11000 for error in errors):
            raise
        return int(exc.details.get("nInserted", 0)), len(errors)


def dead_letter_document(
    *,
    topic: str,
    payload: bytes | str,
    received_at: dt.datetime,
    reason_code: str,
    reason: str,
    serial: str | None = None,
    element: Any = None,
) -> dict[str, Any]:
    """A dead letter keeps the payload as text when it is UTF-8, else as bytes."""
    raw = payload.encode() if isinstance(payload, str) else bytes(payload)
    kept: str | Binary
    try:
        kept = raw[:MAX_DEAD_PAYLOAD].decode("utf-8")
    except UnicodeDecodeError:
        kept = Binary(raw[:MAX_DEAD_PAYLOAD])
    document: dict[str, Any] = {
        "topic": topic,
        "serial": serial,
        "payload": kept,
        "payload_size": len(raw),
        "truncated": len(raw) > MAX_DEAD_PAYLOAD,
        "received_at": received_at,
        "reason_code": str(reason_code),
        "reason": reason,
    }
    if element is not None:
        # Which element of an interval block was refused; repr keeps NaN and odd types readable.
        document["element"] = repr(element)[:2000]
    return document


def insert_dead_letters(documents: Sequence[dict[str, Any]]) -> int:
    return _insert(DEAD_LETTERS, documents)


def newest_ts_by_meter(meter_pks: Iterable[int]) -> dict[int, dt.datetime]:
    """The newest stored reading time of each meter (the ingest's starting watermark)."""
    pks = list(set(meter_pks))
    if not pks:
        return {}
    # Read from the time series' buckets, not its readings: each bucket keeps its newest time in
    # control.max.ts (exact; only control.min is rounded), so this reads one small document per meter
    # and bucket instead of unpacking every reading. A worker starting on 10,000 meters with months
    # of history asks this for all of them.
    pipeline: list[dict[str, Any]] = [
        {"$match": {"meta": {"$in": pks}}},
        {"$group": {"_id": "$meta", "newest": {"$max": "$control.max.ts"}}},
    ]
    buckets = collection(f"system.buckets.{READINGS}")
    return {row["_id"]: row["newest"] for row in buckets.aggregate(pipeline)}


def stored_copies(keys: Mapping[int, Iterable[dt.datetime]]) -> dict[tuple[int, dt.datetime], list[dict[str, Any]]]:
    """For each (meter, ts) asked, the measured values of the copies already stored."""
    clauses = [{"meter": pk, "ts": {"$in": sorted(set(times))}} for pk, times in keys.items() if times]
    if not clauses:
        return {}
    found: dict[tuple[int, dt.datetime], list[dict[str, Any]]] = {}
    for document in collection(READINGS).find({"$or": clauses}, {"_id": 0, "received_at": 0}):
        found.setdefault((document["meter"], document["ts"]), []).append(measured(document))
    return found


def _range(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if start is not None:
        bounds["$gte"] = start
    if end is not None:
        bounds["$lt"] = end
    return {"ts": bounds} if bounds else {}


def _first_received(match: dict[str, Any]) -> list[dict[str, Any]]:
    # Sorting on received_at then _id before $first makes the surviving copy deterministic.
    return [
        {"$match": match},
        {"$sort": {"meter": 1, "ts": 1, "received_at": 1, "_id": 1}},
        {"$group": {"_id": {"meter": "$meter", "ts": "$ts"}, "doc": {"$first": "$$ROOT"}}},
        {"$replaceRoot": {"newRoot": "$doc"}},
    ]


def readings_for_meter(meter_pk: int, start: dt.datetime | None, end: dt.datetime | None) -> list[dict[str, Any]]:
    """One meter's readings with start <= ts < end, one per ts (the first received), by ts."""
    pipeline = [
        *_first_received({"meter": meter_pk, **_range(start, end)}),
        {"$sort": {"ts": 1}},
        {"$project": {"_id": 0}},
    ]
    # The (meter, ts) index, never a time scan of every meter's buckets (see rollups.effective_intervals).
    return list(collection(READINGS).aggregate(pipeline, allowDiskUse=True, hint=READINGS_METER_TS_INDEX))


def register_reading_near(meter_pk: int, at: dt.datetime, within: dt.timedelta) -> dict[str, Any] | None:
    """The meter's register reading at `at`: the newest with a register in [at - within, at], else the
    oldest in (at, at + within]; {ts, register_import_kwh, register_export_kwh}, or None.

    Bounded on both sides so that the read unpacks at most a few buckets of one meter.
    """
    fields = {"_id": 0, "ts": 1, "register_import_kwh": 1, "register_export_kwh": 1}
    has_register = {"meter": meter_pk, "register_import_kwh": {"$ne": None}}
    before = (
        collection(READINGS)
        .find({**has_register, "ts": {"$gte": at - within, "$lte": at}}, fields, sort=[("ts", -1), ("received_at", 1)])
        .limit(1)
    )
    for row in before:
        return dict(row)
    after = (
        collection(READINGS)
        .find({**has_register, "ts": {"$gt": at, "$lte": at + within}}, fields, sort=[("ts", 1), ("received_at", 1)])
        .limit(1)
    )
    for row in after:
        return dict(row)
    return None


def count_distinct_readings(
    meter_pks: Iterable[int] | None = None, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> int:
    """How many distinct (meter, ts) readings are stored, whatever the duplicates."""
    match: dict[str, Any] = _range(start, end)
    if meter_pks is not None:
        match["meter"] = {"$in": list(meter_pks)}
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        {"$group": {"_id": {"meter": "$meter", "ts": "$ts"}}},
        {"$count": "n"},
    ]
    rows = list(collection(READINGS).aggregate(pipeline, allowDiskUse=True))
    return int(rows[0]["n"]) if rows else 0


def count_stored_readings(meter_pks: Iterable[int] | None = None) -> int:
    """Stored copies, duplicates included (the difference to the distinct count is the duplicates)."""
    query = {"meter": {"$in": list(meter_pks)}} if meter_pks is not None else {}
    return collection(READINGS).count_documents(query)


def events_for_meter(meter_pk: int, start: dt.datetime | None, end: dt.datetime | None) -> list[dict[str, Any]]:
    """One meter's events, one per (ts, type) (the first received), by ts."""
    pipeline = [
        {"$match": {"meter": meter_pk, **_range(start, end)}},
        {"$sort": {"ts": 1, "received_at": 1, "_id": 1}},
        {"$group": {"_id": {"ts": "$ts", "type": "$type"}, "doc": {"$first": "$$ROOT"}}},
        {"$replaceRoot": {"newRoot": "$doc"}},
        {"$sort": {"ts": 1, "type": 1}},
        {"$project": {"_id": 0}},
    ]
    return list(collection(EVENTS).aggregate(pipeline))


def reply_for(meter_pk: int, command_id: str) -> dict[str, Any] | None:
    """The meter's outcome (completed or failed) of one command, if it arrived."""
    return collection(METER_REPLIES).find_one(
        {"meter": meter_pk, "id": command_id, "status": {"$ne": "acknowledged"}}, {"_id": 0}
    )


def replies_for(commands: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    """The stored replies to these (meter pk, command id) pairs, oldest received first: one query,
    on the (meter, id, status) index, for every command in flight."""
    if not commands:
        return []
    wanted = set(commands)
    cursor = collection(METER_REPLIES).find(
        {"meter": {"$in": sorted({m for m, _ in wanted})}, "id": {"$in": sorted({c for _, c in wanted})}},
        {"_id": 0},
    )
    found = [reply for reply in cursor if (reply["meter"], reply["id"]) in wanted]
    # Received together (one ingest batch), an acknowledgement still comes before its outcome.
    return sorted(found, key=lambda r: (r.get("received_at") or r["ts"], r.get("status") != "acknowledged"))


def recent_dead_letters(limit: int = 20) -> list[dict[str, Any]]:
    cursor = collection(DEAD_LETTERS).find({}, {"_id": 0}).sort("received_at", -1).limit(limit)
    return list(cursor)


def dead_letters_by_reason(since: dt.datetime | None = None, serial: str | None = None) -> dict[str, int]:
    match: dict[str, Any] = {"received_at": {"$gte": since}} if since is not None else {}
    if serial is not None:
        match["serial"] = serial
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        {"$group": {"_id": "$reason_code", "n": {"$sum": 1}}},
        {"$sort": {"n": -1}},
    ]
    return {row["_id"]: int(row["n"]) for row in collection(DEAD_LETTERS).aggregate(pipeline)}
