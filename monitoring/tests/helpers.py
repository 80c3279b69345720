"""Readings with a household's daily shape, written straight to MongoDB for detection tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import random
import threading
import uuid
import zoneinfo
from collections.abc import Iterator
from typing import Any

from django.conf import settings

from mdms.core import stored_batches
from mdms.core.timeseries.readings import insert_events, insert_readings, reading_document

STEP = dt.timedelta(minutes=15)


def household_power_w(ts: dt.datetime) -> float:
    """300 W through the day, an evening peak of 2.8 kW from 18:00 to 21:00 local time."""
    local = (ts - STEP / 2).astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE))
    return 2800.0 if 18 <= local.hour < 21 else 300.0


def household(meter_pk: int, start: dt.datetime, end: dt.datetime, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Ordinary readings for ts in (start, end], 15-minute intervals, registers consistent."""
    rng = random.Random(seed)
    register = 1000.0
    ts = start + STEP
    while ts <= end:
        power = household_power_w(ts) * rng.uniform(0.95, 1.05)
        voltage = 230.0 - (3.0 if power > 1000 else 0.0) + rng.uniform(-1.0, 1.0)
        energy = round(power / 4000.0, 3)
        register = round(register + energy, 3)
        values = {
            "energy_import_kwh": energy,
            "energy_export_kwh": 0.0,
            "register_import_kwh": register,
            "register_export_kwh": 0.0,
            "power_w": round(power, 1),
            "voltage_v": round(voltage, 1),
            "current_a": round(power / (voltage * 0.95), 2),
            "frequency_hz": round(50.0 + rng.uniform(-0.03, 0.03), 3),
            "power_factor": 0.95,
        }
        yield reading_document(meter_pk=meter_pk, ts=ts, received_at=ts, values=values, interval_s=900)
        ts += STEP


def store(documents: list[dict[str, Any]]) -> None:
    insert_readings(documents)


def store_events(meter_events: list[tuple[int, dt.datetime, str]]) -> None:
    insert_events([{"meter": pk, "ts": ts, "type": kind, "received_at": ts} for pk, ts, kind in meter_events])


def fresh_group() -> str:
    """A consumer group of the shared stream that starts at its end: sees only this test's entries."""
    group = f"test-{uuid.uuid4().hex[:12]}"
    stored_batches.connection().xgroup_create(stored_batches.STREAM, group, id="$", mkstream=True)
    return group


def drop_group(group: str) -> None:
    stored_batches.connection().xgroup_destroy(stored_batches.STREAM, group)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of its access log."""

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on a free local port, serving from a thread (an OMS for webhook tests);
    yields its base URL and shuts it down after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
