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
| rollups_hourly  | regular     | one document per meter and UTC hour, recomputed from readings  |
| rollups_daily   | regular     | one document per meter and local day                           |
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
EVENTS = "events"
ANOMALIES = "anomalies"
DEAD_LETTERS = "dead_letters"
ROLLUPS_HOURLY = "rollups_hourly"
ROLLUPS_DAILY = "rollups_daily"

_lock = threading.Lock()
_client: pymongo.MongoClient[dict[str, Any]] | None = None
_client_pid: int | None = None


def client() -> pymongo.MongoClient[dict[str, Any]]:
    """One MongoClient per process (pymongo clients are thread-safe but not fork-safe)."""
    global _client, _client_pid
    with _lock:
        if _client is None or _client_pid != os.getpid():
            _client = pymongo.MongoClient(
                settings.MONGODB_URI,
                serverSelectionTimeoutMS=5000,
                tz_aware=True,
                # Readings are written in batches; w=1 with the journal is the durability the
                # ingest acknowledges on (a replica set of one has no majority to wait for).
                w=1,
                journal=True,
            )
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
    READINGS: [([("meter", 1), ("ts", 1)], {"name": "meter_ts"})],
    EVENTS: [([("meter", 1), ("ts", 1)], {"name": "meter_ts"})],
    ANOMALIES: [([("meter_id", 1), ("timestamp", 1)], {"name": "meter_timestamp"})],
    # The operator dashboard lists the newest dead letters, and counts them by reason.
    DEAD_LETTERS: [
        ([("received_at", -1)], {"name": "received_at"}),
        ([("reason_code", 1), ("received_at", -1)], {"name": "reason_received_at"}),
    ],
    # _id is {meter, hour}; charts for one meter read a range of hours.
    ROLLUPS_HOURLY: [([("meter", 1), ("hour", 1)], {"name": "meter_hour", "unique": True})],
    ROLLUPS_DAILY: [([("meter", 1), ("day", 1)], {"name": "meter_day", "unique": True})],
}


def ensure_collections(database: Database[dict[str, Any]] | None = None) -> None:
    """Create every collection and index if missing. Safe to run any number of times."""
    database = database if database is not None else db()
    existing = set(database.list_collection_names())
    for name, options in _TIMESERIES.items():
        if name not in existing:
            with contextlib.suppress(pymongo.errors.CollectionInvalid):  # created meanwhile elsewhere
                database.create_collection(name, timeseries=options)
    for name in (DEAD_LETTERS, ROLLUPS_HOURLY, ROLLUPS_DAILY):
        if name not in existing:
            with contextlib.suppress(pymongo.errors.CollectionInvalid):
                database.create_collection(name)
    for name, indexes in _INDEXES.items():
        for keys, options in indexes:
            database[name].create_index(keys, **options)
