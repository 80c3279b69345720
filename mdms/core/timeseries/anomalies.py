"""Anomalies, the baselines they were judged against, and what monitoring reads of readings and events.

Anomaly documents follow the MongoDB reference solution's shape (`timestamp`, `meter_id`, `data`
= the reading, `anomalies` = the flagged fields) plus `rule`, `severity`, `baseline`, `feeder`,
`region` and `detected_at`, and for the statistical rule `episode_start` (monitoring.detection.episodes). A time-series collection has no unique index, so `insert_anomalies`
skips every (meter_id, timestamp, rule) already stored, checked in one query per batch: a re-run
of detection never duplicates an anomaly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from mdms.core.timeseries import ANOMALIES, ANOMALY_BASELINES, EVENTS, METER_LAST_SEEN, READINGS, collection

# (meter pks, first ts, last ts), both ends included: the bounds of a stored batch.
Range = tuple[Sequence[int], dt.datetime, dt.datetime]


def _or(ranges: Iterable[Range], key: str = "meter", time_key: str = "ts") -> list[dict[str, Any]]:
    return [{key: {"$in": list(pks)}, time_key: {"$gte": start, "$lte": end}} for pks, start, end in ranges if pks]


def readings_in(ranges: Iterable[Range]) -> list[dict[str, Any]]:
    """The readings of the ranges, one per (meter, ts) (the first received), by meter then ts."""
    clauses = _or(ranges)
    if not clauses:
        return []
    pipeline: list[dict[str, Any]] = [
        {"$match": {"$or": clauses}},
        {"$sort": {"meter": 1, "ts": 1, "received_at": 1, "_id": 1}},
        {"$group": {"_id": {"meter": "$meter", "ts": "$ts"}, "doc": {"$first": "$$ROOT"}}},
        {"$replaceRoot": {"newRoot": "$doc"}},
        {"$sort": {"meter": 1, "ts": 1}},
        {"$project": {"_id": 0}},
    ]
    return list(collection(READINGS).aggregate(pipeline, allowDiskUse=True))


def readings_before(first_ts: Mapping[int, dt.datetime], lookback: dt.timedelta) -> dict[int, dict[str, Any]]:
    """Each meter's newest reading before its given time (within lookback): the register rules' previous.

    One range query for all meters (a $or of a branch per meter makes MongoDB plan each branch
    and costs seconds for a thousand meters); the per-meter bound is applied here.
    """
    if not first_ts:
        return {}
    query = {
        "meter": {"$in": list(first_ts)},
        "ts": {"$gte": min(first_ts.values()) - lookback, "$lt": max(first_ts.values())},
    }
    found: dict[int, dict[str, Any]] = {}
    for doc in collection(READINGS).find(query, {"_id": 0}).sort([("meter", 1), ("ts", 1)]):
        pk = doc["meter"]
        if first_ts[pk] - lookback <= doc["ts"] < first_ts[pk] and (pk not in found or doc["ts"] > found[pk]["ts"]):
            found[pk] = doc
    return found


def history(
    meter_pks: Sequence[int], start: dt.datetime, end: dt.datetime, fields: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """Raw readings of start <= ts < end for baselines (duplicates barely move a median)."""
    projection = {"_id": 0, "meter": 1, "ts": 1, **dict.fromkeys(fields, 1)}
    query = {"meter": {"$in": list(meter_pks)}, "ts": {"$gte": start, "$lt": end}}
    return collection(READINGS).find(query, projection, batch_size=10_000)


def newest_messages_in(ranges: Iterable[Range]) -> dict[int, tuple[dt.datetime, dt.timedelta]]:
    """Per meter, its newest reading time within the ranges (what a stored batch brought) and the span
    of the message that carried it: its newest minus its oldest reading, 0 for a message of one
    reading, 23:45 for a daily block of 96 quarter-hours (a message's readings share `received_at`)."""
    clauses = _or(ranges)
    if not clauses:
        return {}
    pipeline: list[dict[str, Any]] = [
        {"$match": {"$or": clauses}},
        {
            "$group": {
                "_id": {"meter": "$meter", "received_at": "$received_at"},
                "newest": {"$max": "$ts"},
                "oldest": {"$min": "$ts"},
            }
        },
        # The message with the newest reading last; of two (a re-sent reading), the wider one.
        {"$sort": {"newest": 1, "oldest": -1}},
        {"$group": {"_id": "$_id.meter", "newest": {"$last": "$newest"}, "oldest": {"$last": "$oldest"}}},
    ]
    return {
        row["_id"]: (row["newest"], row["newest"] - row["oldest"]) for row in collection(READINGS).aggregate(pipeline)
    }


def power_events_in(ranges: Iterable[Range]) -> list[dict[str, Any]]:
    """power_off and power_on events of the ranges, one per (meter, ts, type), by ts."""
    clauses = _or(ranges)
    if not clauses:
        return []
    pipeline: list[dict[str, Any]] = [
        {"$match": {"$or": clauses, "type": {"$in": ["power_off", "power_on"]}}},
        {"$group": {"_id": {"meter": "$meter", "ts": "$ts", "type": "$type"}}},
        {"$project": {"_id": 0, "meter": "$_id.meter", "ts": "$_id.ts", "type": "$_id.type"}},
        {"$sort": {"ts": 1, "type": 1}},
    ]
    return list(collection(EVENTS).aggregate(pipeline))


# Baselines: one document per meter, {_id: meter, through, fields: {field: {"hours": [[median,
# sigma, n] x 24], "all": [median, sigma, n]}}}, recomputed about daily by detection.
def baselines_for(meter_pks: Iterable[int]) -> dict[int, dict[str, Any]]:
    return {doc["_id"]: doc for doc in collection(ANOMALY_BASELINES).find({"_id": {"$in": list(meter_pks)}})}


def baselines_save(documents: Sequence[dict[str, Any]]) -> None:
    if documents:
        collection(ANOMALY_BASELINES).bulk_write(
            [UpdateOne({"_id": doc["_id"]}, {"$set": doc}, upsert=True) for doc in documents], ordered=False
        )


def stored_anomaly_keys(documents: Sequence[Mapping[str, Any]]) -> set[tuple[int, dt.datetime, str]]:
    """Which (meter_id, timestamp, rule) of these are already stored: one query per batch."""
    if not documents:
        return set()
    wanted = {(doc["meter_id"], doc["timestamp"], doc["rule"]) for doc in documents}
    times = [doc["timestamp"] for doc in documents]
    query = {
        "meter_id": {"$in": sorted({doc["meter_id"] for doc in documents})},
        "timestamp": {"$gte": min(times), "$lte": max(times)},
    }
    cursor = collection(ANOMALIES).find(query, {"_id": 0, "meter_id": 1, "timestamp": 1, "rule": 1})
    return {key for doc in cursor if (key := (doc["meter_id"], doc["timestamp"], doc["rule"])) in wanted}


def latest_anomalies(
    first_ts: Mapping[int, dt.datetime], rule: str, lookback: dt.timedelta
) -> dict[int, dict[str, Any]]:
    """Per meter, its newest anomaly of this rule in [its time - lookback, its time), if any
    (timestamp, anomalies and episode_start): where detection finds an episode a new finding continues."""
    if not first_ts:
        return {}
    branches = [
        {"meter_id": pk, "timestamp": {"$gte": ts - lookback, "$lt": ts}} for pk, ts in sorted(first_ts.items())
    ]
    pipeline: list[dict[str, Any]] = [
        {"$match": {"rule": rule, "$or": branches}},
        {"$sort": {"timestamp": -1}},
        {
            "$group": {
                "_id": "$meter_id",
                "timestamp": {"$first": "$timestamp"},
                "anomalies": {"$first": "$anomalies"},
                "episode_start": {"$first": "$episode_start"},
            }
        },
    ]
    return {row["_id"]: row for row in collection(ANOMALIES).aggregate(pipeline)}


def insert_anomalies(documents: Sequence[dict[str, Any]]) -> int:
    """Store the anomalies not stored yet; returns how many were new."""
    stored = stored_anomaly_keys(documents)
    seen: set[tuple[int, dt.datetime, str]] = set()
    fresh = []
    for doc in documents:
        key = (doc["meter_id"], doc["timestamp"], doc["rule"])
        if key not in stored and key not in seen:
            seen.add(key)
            fresh.append(doc)
    if fresh:
        collection(ANOMALIES).insert_many(sorted(fresh, key=lambda d: (d["meter_id"], d["timestamp"])), ordered=False)
    return len(fresh)


def _anomaly_query(
    *,
    meter_pk: int | None = None,
    feeder_pk: int | None = None,
    region_pk: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    min_severity: Sequence[str] | None = None,
) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if meter_pk is not None:
        query["meter_id"] = meter_pk
    if feeder_pk is not None:
        query["feeder"] = feeder_pk
    if region_pk is not None:
        query["region"] = region_pk
    if since is not None or until is not None:
        query["timestamp"] = {**({"$gte": since} if since else {}), **({"$lt": until} if until else {})}
    if min_severity:
        query["severity"] = {"$in": list(min_severity)}
    return query


def anomalies(
    *,
    meter_pk: int | None = None,
    feeder_pk: int | None = None,
    region_pk: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    min_severity: Sequence[str] | None = None,
    limit: int = 500,
    skip: int = 0,
) -> list[dict[str, Any]]:
    """Anomalies, newest first, filtered by meter, feeder, region, time and severities; `skip` pages."""
    query = _anomaly_query(meter_pk=meter_pk, feeder_pk=feeder_pk, region_pk=region_pk, since=since, until=until,
                           min_severity=min_severity)  # fmt: skip
    cursor = collection(ANOMALIES).find(query, {"_id": 0}).sort("timestamp", -1).skip(skip).limit(limit)
    return list(cursor)


def count_anomalies(
    *,
    meter_pk: int | None = None,
    feeder_pk: int | None = None,
    region_pk: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    min_severity: Sequence[str] | None = None,
) -> int:
    """How many anomalies `anomalies` would list with these filters, all pages."""
    query = _anomaly_query(meter_pk=meter_pk, feeder_pk=feeder_pk, region_pk=region_pk, since=since, until=until,
                           min_severity=min_severity)  # fmt: skip
    return int(collection(ANOMALIES).count_documents(query))


def anomaly_counts(*, since: dt.datetime, group_by: str) -> list[dict[str, Any]]:
    """Anomalies since a time counted by `meter_id`, `feeder` or `region` and severity."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"timestamp": {"$gte": since}}},
        {"$group": {"_id": {"key": f"${group_by}", "severity": "$severity"}, "n": {"$sum": 1}}},
        {"$sort": {"n": -1}},
    ]
    return [
        {group_by: row["_id"].get("key"), "severity": row["_id"]["severity"], "count": int(row["n"])}
        for row in collection(ANOMALIES).aggregate(pipeline)
    ]


def all_anomalies(start: dt.datetime, end: dt.datetime) -> Iterator[dict[str, Any]]:
    """Every anomaly of a time range (for scoring), without data or baseline."""
    query = {"timestamp": {"$gte": start, "$lt": end}}
    projection = {"_id": 0, "meter_id": 1, "timestamp": 1, "rule": 1, "severity": 1, "anomalies": 1}
    return collection(ANOMALIES).find(query, projection, batch_size=10_000)


# Last seen: {_id: meter, ts: when it was last heard from (its newest reading's interval end, or a
# power_on event), slack_s: how much older than the stream's time its newest reading may be by its
# own cadence (the span of its last message plus how far behind the stream that message came; 0 for
# a meter publishing each reading as it ends), due: ts + slack_s}; the silent-meter check reads it.
def last_seen_advance(newest: Mapping[int, dt.datetime], *, slack: Mapping[int, dt.timedelta] | None = None) -> None:
    """Move each meter's last-seen time forward (never back). With `slack`, the slack of a meter's
    newest message replaces the stored one; without (a power_on event), the stored slack stays."""
    if newest:
        collection(METER_LAST_SEEN).bulk_write(
            [
                UpdateOne({"_id": pk}, _last_seen_update(ts, None if slack is None else slack.get(pk)), upsert=True)
                for pk, ts in newest.items()
            ],
            ordered=False,
        )


def _last_seen_update(ts: dt.datetime, slack: dt.timedelta | None) -> list[dict[str, Any]]:
    fields: dict[str, Any] = {"ts": {"$max": [ts, "$ts"]}}
    if slack is not None:
        # Expressions of one $set stage all read the document before it: "$ts" is the old time.
        is_newest = {"$or": [{"$eq": [{"$type": "$ts"}, "missing"]}, {"$gte": [ts, "$ts"]}]}
        fields["slack_s"] = {"$cond": [is_newest, slack.total_seconds(), "$slack_s"]}
    due = {"$add": ["$ts", {"$multiply": [{"$ifNull": ["$slack_s", 0]}, 1000]}]}
    return [{"$set": fields}, {"$set": {"due": due}}]


def last_seen_overdue(threshold: dt.datetime) -> dict[int, tuple[dt.datetime, dt.timedelta]]:
    """Meters whose newest reading plus its slack ends before threshold: (newest, slack) each. One
    indexed range query; a record written before slack was kept counts with none."""
    query = {"$or": [{"due": {"$lt": threshold}}, {"due": {"$exists": False}, "ts": {"$lt": threshold}}]}
    return {
        doc["_id"]: (doc["ts"], dt.timedelta(seconds=doc.get("slack_s") or 0))
        for doc in collection(METER_LAST_SEEN).find(query, {"ts": 1, "slack_s": 1})
    }


def last_seen(meter_pks: Iterable[int]) -> dict[int, dt.datetime]:
    return {doc["_id"]: doc["ts"] for doc in collection(METER_LAST_SEEN).find({"_id": {"$in": list(meter_pks)}})}


# The outage follower's clock, a document of meter_last_seen with _id "clock" (no "ts", so the
# silence queries never see it): the newest reading or event time the follower has applied
# ("newest"), and the wall time when it did ("at"). Silence is measured against it, so a backlog
# being replayed (months old, minutes behind) is not mistaken for meters gone quiet.
CLOCK_ID = "clock"


def stream_clock_advance(newest: dt.datetime, *, at: dt.datetime) -> None:
    """Move the clock to `newest` (never past the wall time `at`, never backwards)."""
    newest = min(newest, at)
    # A duplicate key means the clock exists and is already at or past `newest`: nothing to do.
    with contextlib.suppress(DuplicateKeyError):
        collection(METER_LAST_SEEN).update_one(
            {"_id": CLOCK_ID, "newest": {"$lt": newest}}, {"$set": {"newest": newest, "at": at}}, upsert=True
        )


def stream_clock() -> tuple[dt.datetime, dt.datetime] | None:
    """(newest time applied, wall time it was applied), or None before the outage follower applied anything."""
    doc = collection(METER_LAST_SEEN).find_one({"_id": CLOCK_ID})
    if doc is None:
        return None
    return doc["newest"].astimezone(dt.UTC), doc["at"].astimezone(dt.UTC)
