"""The one place that knows MongoDB: the client, collection names, their options and indexes.

Everything else calls the functions of this package (readings, rollups, ...) and never names a
collection itself.

Collections (the schema is documented in docs/data-model.md):

| name            | kind        | holds                                                          |
|-----------------|-------------|----------------------------------------------------------------|
| readings        | time series | raw interval readings; metaField `meter` (Meter.pk), timeField `ts` (interval end, UTC) |
| events          | time series | meter events (power_off, power_on, tamper, ...), same keys     |
| anomalies       | time series | flagged readings in the reference format plus rule/severity    |
| dead_letters    | regular     | messages that could not be used: raw payload, topic, reason    |
| rollups_daily   | regular     | one document per meter and local day: totals, 23/24/25 hourly values, max demand (rollups.py) |
| estimates       | regular     | VEE estimates for missing intervals, one per meter and ts, kept apart from readings |
| interval_edits  | regular     | the current edited value of an interval, one per meter and ts (audit trail in Postgres) |
| interval_flags  | regular     | VEE flags on measured intervals (questionable, validated), one per meter, ts and rule |
| meter_replies   | regular     | replies to on-demand reads, one per meter and command id       |
| anomaly_baselines | regular   | per meter, robust hour-of-day baselines anomaly detection uses |
| meter_last_seen | regular     | per meter, its newest reading's time and slack (silent check)  |
| follower_watermarks | regular | per stored-batches follower, its ingest-time watermark and open gap (followers.py) |
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

import pymongo
from django.conf import settings
from pymongo.collection import Collection
from pymongo.database import Database

READINGS = "readings"
# Reads of one meter's range name this index (a hint), so no cached plan can swap it for a time scan.
READINGS_METER_TS_INDEX = "meter_ts"
EVENTS = "events"
ANOMALIES = "anomalies"
DEAD_LETTERS = "dead_letters"
ROLLUPS_DAILY = "rollups_daily"
METER_REPLIES = "meter_replies"
ANOMALY_BASELINES = "anomaly_baselines"
METER_LAST_SEEN = "meter_last_seen"
ESTIMATES = "estimates"
INTERVAL_EDITS = "interval_edits"
INTERVAL_FLAGS = "interval_flags"
FOLLOWER_WATERMARKS = "follower_watermarks"

_lock = threading.Lock()
_client: pymongo.MongoClient[dict[str, Any]] | None = None
_client_pid: int | None = None


# How long an operation waits for a primary. A replica set elects a new one 10-12 s after its
# primary dies (electionTimeoutMillis 10 s plus the heartbeat that notices): waiting longer than
# that lets a read or a write made during a failover succeed late instead of failing. The cost: with
# MongoDB wholly down, a request waits this long before it fails. A URI that sets
# serverSelectionTimeoutMS itself wins.
SERVER_SELECTION_TIMEOUT_MS = 20_000


def client_options(uri: str) -> dict[str, Any]:
    """The options of the project's MongoClient, besides those the URI sets itself.

    Writes wait for a majority of the replica set, journaled: an acknowledged reading survives the
    loss of the primary (a w=1 write acknowledged by a primary that dies before a secondary copied
    it is rolled back). With one node the majority is that node, so this costs nothing there; with
    three it adds a replication round trip per batch. Writes and reads are retried once after a
    primary change (retryWrites, retryReads), and reads go to the primary: the followers recompute
    rollups from what they read, which must be every acknowledged reading.
    """
    from pymongo.uri_parser import parse_uri

    given = {key.lower() for key in parse_uri(uri)["options"]}
    options: dict[str, Any] = {
        "tz_aware": True,
        "w": "majority",
        "journal": True,
        "retryWrites": True,
        "retryReads": True,
        "readPreference": "primary",
    }
    if "serverselectiontimeoutms" not in given:
        options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
    return {key: value for key, value in options.items() if key.lower() not in given}


def client() -> pymongo.MongoClient[dict[str, Any]]:
    """One MongoClient per process (pymongo clients are thread-safe but not fork-safe)."""
    global _client, _client_pid
    with _lock:
        if _client is None or _client_pid != os.getpid():
            _client = pymongo.MongoClient(settings.MONGODB_URI, **client_options(settings.MONGODB_URI))
            _client_pid = os.getpid()
        return _client


def db() -> Database[dict[str, Any]]:
    return client()[settings.MONGODB_DB]


def collection(name: str) -> Collection[dict[str, Any]]:
    return db()[name]


def ping() -> None:
    client().admin.command("ping")


# Time-series collection options. Granularity "minutes" suits 1- to 15-minute intervals (buckets
# of an hour per meter); the metaField is the meter alone, so a bucket never mixes meters.
_TIMESERIES: dict[str, dict[str, Any]] = {
    READINGS: {"timeField": "ts", "metaField": "meter", "granularity": "minutes"},
    EVENTS: {"timeField": "ts", "metaField": "meter", "granularity": "minutes"},
    ANOMALIES: {"timeField": "timestamp", "metaField": "meter_id", "granularity": "minutes"},
}

# Secondary indexes, with who uses them:
_INDEXES: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    # Charts, rollups and billing read one meter's time range.
    # The followers' scan after a gap in the stored-batches stream reads what was received since a
    # time (followers.stored_since); on a time-series collection this indexes each bucket's
    # received_at bounds, one entry per bucket.
    READINGS: [
        ([("meter", 1), ("ts", 1)], {"name": READINGS_METER_TS_INDEX}),
        ([("received_at", 1)], {"name": "received_at"}),
    ],
    EVENTS: [([("meter", 1), ("ts", 1)], {"name": "meter_ts"}), ([("received_at", 1)], {"name": "received_at"})],
    ANOMALIES: [
        ([("meter_id", 1), ("timestamp", 1)], {"name": "meter_timestamp"}),
        # The operator's "active anomalies" by feeder or region, newest first.
        ([("feeder", 1), ("timestamp", -1)], {"name": "feeder_timestamp"}),
        ([("region", 1), ("timestamp", -1)], {"name": "region_timestamp"}),
    ],
    # The silent-meter check asks for meters whose next message is overdue (due = ts + slack).
    METER_LAST_SEEN: [([("ts", 1)], {"name": "ts"}), ([("due", 1)], {"name": "due"})],
    # The operator dashboard lists the newest dead letters, and counts them by reason.
    DEAD_LETTERS: [
        ([("received_at", -1)], {"name": "received_at"}),
        ([("reason_code", 1), ("received_at", -1)], {"name": "reason_received_at"}),
    ],
    # Commands look up the replies to their command ids (regular collection, so unique works; the
    # ingest inserts replies with ordered=False and counts a duplicate-key error as a duplicate).
    # One reply per command and status (an acknowledgement, then the outcome): a resend is a no-op.
    METER_REPLIES: [([("meter", 1), ("id", 1), ("status", 1)], {"name": "meter_id_status", "unique": True})],
    # A recompute upserts one (meter, day); charts and billing read one meter's range of days.
    ROLLUPS_DAILY: [([("meter", 1), ("day", 1)], {"name": "meter_day", "unique": True})],
    # Rollups and interval reads merge estimates and edits into a meter's range of readings; the
    # unique key makes estimating or editing an interval twice replace, never add.
    ESTIMATES: [([("meter", 1), ("ts", 1)], {"name": "meter_ts", "unique": True})],
    INTERVAL_EDITS: [([("meter", 1), ("ts", 1)], {"name": "meter_ts", "unique": True})],
    # The same merge reads a meter's flags by (meter, ts); validation replaces a day's flags of one
    # rule, so one flag per (meter, ts, rule).
    INTERVAL_FLAGS: [([("meter", 1), ("ts", 1), ("rule", 1)], {"name": "meter_ts_rule", "unique": True})],
}
# Indexes an earlier version created that stand in the way of today's (dropped by ensure_collections):
# replies were unique per (meter, id) before a command could be acknowledged and then completed.
_REPLACED_INDEXES = {METER_REPLIES: ["meter_id"]}


def ensure_collections(database: Database[dict[str, Any]] | None = None) -> None:
    """Create every collection and index if missing. Safe to run any number of times."""
    database = database if database is not None else db()
    existing = set(database.list_collection_names())
    for name, options in _TIMESERIES.items():
        if name not in existing:
            with contextlib.suppress(pymongo.errors.CollectionInvalid):  # created meanwhile elsewhere
                database.create_collection(name, timeseries=options)
    for name in (DEAD_LETTERS, ROLLUPS_DAILY, ANOMALY_BASELINES, METER_LAST_SEEN, FOLLOWER_WATERMARKS):
        if name not in existing:
            with contextlib.suppress(pymongo.errors.CollectionInvalid):
                database.create_collection(name)
    for name, names in _REPLACED_INDEXES.items():
        present = set(database[name].index_information())
        for index in names:
            if index in present:
                database[name].drop_index(index)
    for name, indexes in _INDEXES.items():
        for keys, options in indexes:
            database[name].create_index(keys, **options)
