"""The operators' ingest stats endpoint: counters and dead letters, for staff roles only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from mdms.core.timeseries import readings as store

pytestmark = pytest.mark.urls("ingest.tests.urls")


def test_operator_sees_counters_and_recent_dead_letters(olivia: Any, mongo: Any, client: Client) -> None:
    store.insert_dead_letters(
        [
            store.dead_letter_document(
                topic="meters/X/readings",
                payload=b"\xff",
                received_at=dt.datetime.now(tz=dt.UTC),
                reason_code="bad_encoding",
                reason="payload is not UTF-8 text",
            )
        ]
    )
    client.force_login(olivia)
    body = client.get("/ingest/stats/").json()
    assert body["dead_letters_last_24h_by_reason"] == {"bad_encoding": 1}
    assert body["recent_dead_letters"][0]["payload"] == "<1 bytes>"
    assert {"received", "stored", "dead_lettered", "duplicates", "last_lag_s"} <= body["counters"].keys()


def test_billing_staff_may_read_stats_but_a_consumer_may_not(alice: Any, bill: Any, mongo: Any, client: Client) -> None:
    client.force_login(bill)
    assert client.get("/ingest/stats/").status_code == 200
    client.force_login(alice.user)
    assert client.get("/ingest/stats/").status_code == 403
    client.logout()
    assert client.get("/ingest/stats/").status_code == 302


def test_batch_latencies_land_in_cumulative_histogram_buckets_shared_through_redis() -> None:
    from ingest import counters

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
