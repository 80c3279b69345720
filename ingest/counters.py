"""Ingest counters in Redis, shared by every ingest worker.

Counters live in one hash (HINCRBY is atomic, so N workers add up); dead letters by reason in a
second. The hand-off of stored batches to rollups and detection is mdms.core.stored_batches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import redis

from mdms.core import stored_batches

COUNTERS_KEY = "mdms:ingest:counters"
REASONS_KEY = "mdms:ingest:dead-letters-by-reason"

# Monotonic counts (HINCRBY).
COUNTS = (
    "received",  # messages taken from the broker
    "readings_received",
    "stored",  # readings written
    "events_stored",
    "replies_stored",
    "dead_lettered",
    "duplicates",  # exact copies skipped (or refused by the replies' unique index)
    "conflicting_duplicates",  # same meter and ts, other values: stored, for VEE to flag
    "batches",
    "batch_latency_ms_total",  # sum of first-received-to-acknowledged time, for the average
)


def connection() -> redis.Redis:
    # The same Redis and client settings as the stored-batch stream: one connection pool for both.
    return stored_batches.connection()


def record_batch(
    pipe: redis.client.Pipeline,
    *,
    counts: Mapping[str, int],
    reasons: Mapping[str, int],
    latency_ms: float,
    newest_ts: dt.datetime | None,
    now: dt.datetime,
) -> None:
    """Queue one flushed batch's additions to the shared counters on pipe; the caller executes it
    (with the batch's stored-batch entries, so that a batch costs one Redis round trip)."""
    for name, amount in counts.items():
        if amount:
            pipe.hincrby(COUNTERS_KEY, name, amount)
    for reason, amount in reasons.items():
        pipe.hincrby(REASONS_KEY, reason, amount)
    pipe.hincrby(COUNTERS_KEY, "batches", 1)
    pipe.hincrby(COUNTERS_KEY, "batch_latency_ms_total", round(latency_ms))
    gauges: dict[Any, str | float] = {"last_batch_at": now.isoformat(), "last_batch_latency_ms": round(latency_ms, 1)}
    if newest_ts is not None:
        # Lag: how old the newest reading was when it got stored (meter clock to our disk).
        gauges["last_newest_ts"] = newest_ts.isoformat()
        gauges["last_lag_s"] = round((now - newest_ts).total_seconds(), 3)
    pipe.hset(COUNTERS_KEY, mapping=gauges)


def snapshot() -> dict[str, Any]:
    """Every counter and gauge, with derived figures (average batch latency, current lag)."""
    client = connection()
    raw: dict[str, str] = client.hgetall(COUNTERS_KEY)  # type: ignore[assignment]
    result: dict[str, Any] = {name: int(raw.get(name, 0)) for name in COUNTS}
    batches = result["batches"]
    result["average_batch_latency_ms"] = round(result["batch_latency_ms_total"] / batches, 1) if batches else None
    result["last_batch_latency_ms"] = float(raw["last_batch_latency_ms"]) if "last_batch_latency_ms" in raw else None
    result["last_batch_at"] = raw.get("last_batch_at")
    result["last_newest_ts"] = raw.get("last_newest_ts")
    result["last_lag_s"] = float(raw["last_lag_s"]) if "last_lag_s" in raw else None
    if "last_newest_ts" in raw:
        newest = dt.datetime.fromisoformat(raw["last_newest_ts"])
        result["lag_now_s"] = round((dt.datetime.now(tz=dt.UTC) - newest).total_seconds(), 3)
    reasons: dict[str, str] = client.hgetall(REASONS_KEY)  # type: ignore[assignment]
    result["dead_letters_by_reason"] = {reason: int(n) for reason, n in reasons.items()}
    return result
