"""The ingest's counters in Redis: batch latencies as cumulative histogram buckets (for /metrics)."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest import counters


def test_batch_latencies_land_in_cumulative_histogram_buckets_shared_through_redis() -> None:
    def record(latency_ms: float) -> None:
        pipe = counters.connection().pipeline(transaction=False)
        now = dt.datetime.now(tz=dt.UTC)
        counters.record_batch(pipe, counts={}, reasons={}, latency_ms=latency_ms, newest_ts=None, now=now)
        pipe.execute()

    before = counters.latency_histogram()
    for latency_ms in (40.0, 150.0, 200.0, 40_000.0):
        record(latency_ms)
    after = counters.latency_histogram()
    moved = {bound: count - dict(before.buckets)[bound] for bound, count in after.buckets}
    assert moved["0.05"] == 1 and moved["0.1"] == 1
    assert moved["0.2"] == 3  # 150 ms and exactly 200 ms are "le 0.2"
    assert moved["30.0"] == 3 and moved["+Inf"] == 4
    assert after.count - before.count == 4
    assert after.sum_s - before.sum_s == pytest.approx(40.39)
