"""Ingest counters in Redis, shared by every ingest worker.

Counters live in one hash (HINCRBY is atomic, so N workers add up); dead letters by reason in a
second. The hand-off of stored batches to rollups and detection is mdms.core.stored_batches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from mdms.core import stored_batches

COUNTERS_KEY = "mdms:ingest:counters"
REASONS_KEY = "mdms:ingest:dead-letters-by-reason"
# Batch latency as a histogram for Prometheus (mdms.metrics): one field per bucket upper bound in
# seconds, each batch counted once in the first bucket that holds it (the reader makes them
# cumulative). Kept in Redis rather than in prometheus_client's multiprocess files because ingest
# workers run in other containers than the web (`--scale ingest=3`): a shared directory would only
# cover one host, whereas Redis already takes each batch's counters in the same round trip.
LATENCY_KEY = "mdms:ingest:batch-latency-buckets"
# Seconds. A batch waits at most FLUSH_INTERVAL_S (0.2 s) for more messages, then MongoDB's write:
# the buckets are dense around that, and 30 s catches a stalled store.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)

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
    pipe.hincrby(LATENCY_KEY, _bucket(latency_ms / 1000), 1)
    pipe.hincrby(LATENCY_KEY, "sum_ms", round(latency_ms))
    gauges: dict[Any, str | float] = {"last_batch_at": now.isoformat(), "last_batch_latency_ms": round(latency_ms, 1)}
    if newest_ts is not None:
        # Lag: how old the newest reading was when it got stored (meter clock to our disk).
        gauges["last_newest_ts"] = newest_ts.isoformat()
        gauges["last_lag_s"] = round((now - newest_ts).total_seconds(), 3)
    pipe.hset(COUNTERS_KEY, mapping=gauges)


def _bucket(latency_s: float) -> str:
    for bound in LATENCY_BUCKETS_S:
        if latency_s <= bound:
            return repr(bound)
    return "+Inf"


@dataclass(frozen=True)
class LatencyHistogram:
    buckets: list[tuple[str, int]]  # (upper bound, cumulative count), ending with "+Inf"
    sum_s: float
    count: int


def latency_histogram() -> LatencyHistogram:
    """The batch latency histogram of every ingest worker, from one read of Redis."""
    raw_buckets: dict[str, str] = connection().hgetall(LATENCY_KEY)  # type: ignore[assignment]
    cumulative, buckets = 0, []
    for bound in [*(repr(b) for b in LATENCY_BUCKETS_S), "+Inf"]:
        cumulative += int(raw_buckets.get(bound, 0))
        buckets.append((bound, cumulative))
    # The +Inf bucket is the count, so that buckets and count always agree on one reading of Redis.
    return LatencyHistogram(buckets=buckets, sum_s=int(raw_buckets.get("sum_ms", 0)) / 1000, count=cumulative)


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
