"""Reads while ingest runs: the consumer dashboard and one meter-day of raw readings through the API.

The issue this answers: while the demo backfilled history (load average 3.5-7.9 on 2 cores), the
dashboard took 7-23 s and one meter-day of raw readings through the API 6-15 s. Here:
- the consumers, rollups and today's readings of bench/portal.py (1,000 meters), plus two weeks of
  raw 15-minute history for those meters (the raw-day read has neighbours, as in production);
- two ingest workers (`celery -A mdms worker --ingest`, as bench/ingest.py starts them) and a
  publisher that sends history for 10,000 other meters as day blocks of 96 readings, paced at
  TARGET_READINGS_PER_S: a backfill through the real broker and workers, for the whole measurement;
- meanwhile, in this process, the dashboard (`/meters/<pk>/`, as a random consumer) and
  `GET /api/v1/meters/<pk>/readings/?resolution=raw` for a random meter and one past local day
  (with an API token), alternately, through Django's whole stack with DEBUG off.
The ingest rate achieved is measured from the workers' own counter over the measurement window.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import statistics
import threading
import time
from typing import Any

from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

from bench import ingest as ingest_bench
from bench import portal as portal_bench
from bench.common import progress, save_results, save_section
from mdms.core import timeseries
from mdms.core.api_tokens import api_token_issue
from mdms.core.localtime import local_midnight
from mdms.core.mqtt import broker, topics
from mdms.core.timeseries import readings as stored

TARGET_READINGS_PER_S = 5_000
HISTORY_DAYS = 14
REQUESTS = 300  # of each kind
WARMUP = 20
WORKERS = 2
BACKFILL_METERS = 10_000
BACKFILL_START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # far before every window read here


def load_history(meter_pks: list[int], today: dt.date) -> int:
    """HISTORY_DAYS local days of 15-minute readings before today for each meter, a meter at a time."""
    start = local_midnight(today - dt.timedelta(days=HISTORY_DAYS))
    end = local_midnight(today)
    now = timezone.now()
    ends = []
    ts = start + dt.timedelta(minutes=15)
    while ts <= end:
        ends.append(ts)
        ts += dt.timedelta(minutes=15)
    written = 0
    for index, pk in enumerate(meter_pks, start=1):
        stored.insert_readings(
            [
                stored.reading_document(
                    meter_pk=pk,
                    ts=moment,
                    received_at=now,
                    values={"energy_import_kwh": 0.2, "energy_export_kwh": 0.0, "power_w": 800.0, "voltage_v": 231.0},
                    interval_s=900,
                )
                for moment in ends
            ]
        )
        written += len(ends)
        if index % 100 == 0:
            progress("reads_under_ingest: history of meters", index, len(meter_pks))
    return written


class PacedBackfill:
    """Publishes day blocks of history for the bench-ingest meters at a steady readings-per-second."""

    def __init__(self, serials: list[str], readings_per_s: int) -> None:
        self.serials = serials
        self.messages_per_s = max(1, round(readings_per_s / ingest_bench.BLOCK))
        self.stop = threading.Event()
        self.sent_readings = 0
        self.thread = threading.Thread(target=self._run, name="bench-backfill", daemon=True)

    def _blocks(self, second: int) -> list[tuple[str, bytes]]:
        messages = []
        for k in range(self.messages_per_s):
            n = second * self.messages_per_s + k
            serial = self.serials[n % len(self.serials)]
            day_start = BACKFILL_START + dt.timedelta(days=n // len(self.serials))
            block = [
                ingest_bench.reading(n * ingest_bench.BLOCK + i, day_start + dt.timedelta(minutes=15 * (i + 1)))
                for i in range(ingest_bench.BLOCK)
            ]
            messages.append((topics.topic(serial, topics.Kind.READINGS), json.dumps(block).encode()))
        return messages

    def _run(self) -> None:
        publisher = ingest_bench.new_publisher("backfill")
        second = 0
        began = time.monotonic()
        try:
            while not self.stop.is_set():
                publisher.send(publisher.encode(self._blocks(second)))
                self.sent_readings += self.messages_per_s * ingest_bench.BLOCK
                second += 1
                # Paced on the wall clock: a slow second is not made up with a burst.
                delay = began + second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    began -= delay
        finally:
            publisher.close()

    def __enter__(self) -> PacedBackfill:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run() -> dict[str, Any]:
    timeseries.ensure_collections()
    broker.ensure_ingest_account()
    today = timezone.localdate()
    now = timezone.now()
    meters = portal_bench.ensure_consumers(portal_bench.METERS)
    meter_pks = [pk for _, pk in meters]
    portal_bench.load_rollups(meters, today)
    portal_bench.load_today(meters, now)  # also empties these meters' readings
    history = load_history(meter_pks, today)
    backfill_meters = ingest_bench.ensure_meters(BACKFILL_METERS)
    backfill_serials = [serial for _, serial in backfill_meters]
    # An earlier run's backfill would make this one's messages duplicates, which the ingest skips
    # without storing: start from none (a time series deletes by its metaField only).
    timeseries.collection(timeseries.READINGS).delete_many({"meter": {"$in": [pk for pk, _ in backfill_meters]}})
    print(f"reads_under_ingest: {len(meters):,} consumers, {history:,} readings of history")

    users = {u.pk: u for u in User.objects.filter(pk__in=[user_pk for user_pk, _ in meters])}
    token = api_token_issue(name="bench reads under ingest", scopes=["cis_read"])
    rng = random.Random(14)
    dashboard_ms: list[float] = []
    raw_day_ms: list[float] = []
    statuses: set[int] = set()
    rows_per_day: set[int] = set()
    workers = ingest_bench.start_workers(WORKERS)
    try:
        with PacedBackfill(backfill_serials, TARGET_READINGS_PER_S) as backfill:
            time.sleep(5)  # the backfill running at its pace before the first read
            stored_before = ingest_bench.stored_by_workers()
            started = time.monotonic()
            api = Client(headers={"Authorization": f"Bearer {token.key}"})
            with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
                for index in range(WARMUP + REQUESTS):
                    user_pk, meter_pk = meters[rng.randrange(len(meters))]
                    client = Client()
                    client.force_login(users[user_pk])
                    begin = time.perf_counter()
                    response = client.get(f"/meters/{meter_pk}/")
                    elapsed_dashboard = (time.perf_counter() - begin) * 1000
                    statuses.add(response.status_code)

                    day = today - dt.timedelta(days=rng.randrange(1, HISTORY_DAYS))
                    _, raw_meter = meters[rng.randrange(len(meters))]
                    begin = time.perf_counter()
                    response = api.get(
                        f"/api/v1/meters/{raw_meter}/readings/",
                        {
                            "resolution": "raw",
                            "start": local_midnight(day).isoformat(),
                            "end": local_midnight(day + dt.timedelta(days=1)).isoformat(),
                        },
                    )
                    elapsed_raw = (time.perf_counter() - begin) * 1000
                    statuses.add(response.status_code)
                    if response.status_code == 200:
                        rows_per_day.add(int(response.json()["count"]))
                    if index >= WARMUP:
                        dashboard_ms.append(elapsed_dashboard)
                        raw_day_ms.append(elapsed_raw)
                    if index % 20 == 0:
                        progress("reads_under_ingest: request pairs", index, WARMUP + REQUESTS)
            elapsed_s = time.monotonic() - started
            load_average = os.getloadavg()[1]  # the machine's 5-minute load average over the measurement
            ingest_rate = (ingest_bench.stored_by_workers() - stored_before) / elapsed_s
            sent_rate = backfill.sent_readings / (time.monotonic() - started + 5)
    finally:
        ingest_bench.stop_workers(workers)
    if statuses != {200}:
        raise RuntimeError(f"reads answered {sorted(statuses)}")

    dashboard_p50, dashboard_p95 = statistics.median(dashboard_ms), _percentile(dashboard_ms, 0.95)
    raw_p50, raw_p95 = statistics.median(raw_day_ms), _percentile(raw_day_ms, 0.95)
    results = {
        "consumer_dashboard_under_ingest_p95_ms": round(dashboard_p95, 1),
        "consumer_dashboard_under_ingest_p50_ms": round(dashboard_p50, 1),
        "raw_day_under_ingest_p95_ms": round(raw_p95, 1),
        "raw_day_under_ingest_p50_ms": round(raw_p50, 1),
        "reads_under_ingest_readings_per_s": round(ingest_rate),
        "reads_under_ingest_load_average": round(load_average, 1),
    }
    save_results(results)
    save_section(
        "45-reads-under-ingest",
        f"""
## Reads while ingest runs

{len(meters):,} consumers as in "Consumer dashboard", with {HISTORY_DAYS} days of raw 15-minute history
each ({history:,} readings). {WORKERS} ingest workers take a backfill of day blocks (96 readings) for
{BACKFILL_METERS:,} other meters, published through the broker at a target of {TARGET_READINGS_PER_S:,}
readings/s (sent: {sent_rate:,.0f}/s; stored by the workers during the measurement: {ingest_rate:,.0f}/s).
Meanwhile {REQUESTS} pairs of requests, after {WARMUP} warm-up pairs, in-process with DEBUG off: the
dashboard of a random consumer, and `GET /api/v1/meters/<pk>/readings/?resolution=raw` of one past
local day of a random meter with an API token ({sorted(rows_per_day)} rows). The machine is shared
(2 cores, other engineers' tests and benchmarks running at the same time; the 5-minute load average
at the end of the measurement was {load_average:.1f}): figures vary from run to run.

| figure | value | goal |
|---|---|---|
| consumer dashboard under ingest p50 | {dashboard_p50:.1f} ms | |
| consumer dashboard under ingest p95 | {dashboard_p95:.1f} ms | 300 ms |
| raw readings, one meter-day, under ingest p50 | {raw_p50:.1f} ms | |
| raw readings, one meter-day, under ingest p95 | {raw_p95:.1f} ms | 100 ms |
| ingest stored during the measurement | {ingest_rate:,.0f} readings/s | {TARGET_READINGS_PER_S:,} |
""",
    )
    return results
