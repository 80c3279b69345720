"""Shard keys for a sharded MongoDB cluster, and the commands that apply them (`manage.py mongo_shard`).

Why these keys (docs/scaling.md says more):

- Readings and events: `{meter: 1, ts: 1}`. A time-series collection may only be sharded on its
  metaField and timeField. The meter first: every interval, every meter writes, so writes spread over
  all the chunks (a key starting with ts would send each interval's writes to the one newest chunk,
  a hot shard); and every query the system makes of raw data is one meter's time range (rollup
  recompute, VEE, charts, the lake export per meter-day), which the key turns into a single-shard
  read. ts second lets the balancer split a chunk inside one meter's history, so no chunk grows
  jumbo however long a meter lives.
- Rollups, estimates, interval edits, replies: `{meter: 1}` prefixes, matching their unique
  indexes (a unique index on a sharded collection must start with the shard key), so a meter's
  upserts stay single-shard and the uniqueness that makes recomputation idempotent still holds.
- Anomalies: `{meter_id: 1, timestamp: 1}`, as readings. Dead letters, baselines and last-seen stay
  unsharded: small, and read whole by operators' pages.
"""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from mdms.core.timeseries import (
    _TIMESERIES,
    ANOMALIES,
    ESTIMATES,
    EVENTS,
    INTERVAL_EDITS,
    METER_REPLIES,
    READINGS,
    ROLLUPS_DAILY,
)

SHARD_KEYS: dict[str, dict[str, Any]] = {
    READINGS: {"meter": 1, "ts": 1},
    EVENTS: {"meter": 1, "ts": 1},
    ANOMALIES: {"meter_id": 1, "timestamp": 1},
    ROLLUPS_DAILY: {"meter": 1, "day": 1},
    ESTIMATES: {"meter": 1, "ts": 1},
    INTERVAL_EDITS: {"meter": 1, "ts": 1},
    METER_REPLIES: {"meter": 1, "id": 1},
}


class NotASharedCluster(Exception):
    """The configured MongoDB is not a mongos."""


def shard_commands(database_name: str) -> list[dict[str, Any]]:
    """The admin commands, in order, that shard every collection that should be (run on a mongos)."""
    commands: list[dict[str, Any]] = [{"enableSharding": database_name}]
    for name, key in SHARD_KEYS.items():
        command: dict[str, Any] = {"shardCollection": f"{database_name}.{name}", "key": key}
        if name in _TIMESERIES:
            command["timeseries"] = _TIMESERIES[name]
        commands.append(command)
    return commands


def apply(database: Database[dict[str, Any]]) -> list[str]:
    """Shard the collections through a mongos; a collection already sharded is left as it is.

    Raises NotASharedCluster when the server is a replica set or a single mongod.
    """
    hello = database.client.admin.command("hello")
    if hello.get("msg") != "isdbgrid":
        raise NotASharedCluster("MONGODB_URI does not point at a mongos (a sharded cluster's router)")
    done = []
    sharded = {row["_id"] for row in database.client["config"]["collections"].find({}, {"_id": 1}) if "_id" in row}
    for command in shard_commands(database.name):
        target = command.get("shardCollection")
        if target in sharded:
            done.append(f"{target}: already sharded")
            continue
        database.client.admin.command(command)
        done.append(f"{target or command['enableSharding']}: done")
    return done
