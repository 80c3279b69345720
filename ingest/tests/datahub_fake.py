"""A local HTTP server playing a utility data hub, for the data hub tests.

It answers the Enedis load-curve route with a valid curve for the range asked (30-minute average
power, dated in Paris local time without offset), unless a scripted answer is queued: an error
status with headers, a raw body, anything. It records every request it gets, with its arrival time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
ROUTE = "/metering_data_lc/v5/consumption_load_curve"


@dataclass(frozen=True)
class Scripted:
    status: int = 200
    body: bytes | None = None  # None: a valid curve for the range asked
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() on arrival
    path: str
    query: dict[str, str]
    authorization: str | None


def curve(usage_point_id: str, start: dt.date, end: dt.date, *, first_value: int = 1000) -> dict[str, Any]:
    """The Enedis answer for local days start <= day < end: one reading per 30 minutes, dated at its end."""
    first = dt.datetime.combine(start, dt.time(), tzinfo=PARIS).astimezone(dt.UTC)
    last = dt.datetime.combine(end, dt.time(), tzinfo=PARIS).astimezone(dt.UTC)
    readings = []
    ts = first + dt.timedelta(minutes=30)
    while ts <= last:
        readings.append(
            {
                "value": str(first_value + len(readings)),
                "date": ts.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S"),
                "interval_length": "PT30M",
                "measure_type": "B",
            }
        )
        ts += dt.timedelta(minutes=30)
    return {
        "meter_reading": {
            "usage_point_id": usage_point_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "quality": "BRUT",
            "reading_type": {"unit": "W", "measurement_kind": "power", "aggregate": "average"},
            "interval_reading": readings,
        }
    }


def dumps(document: Any) -> bytes:
    """Pretty-printed, as hubs answer, so that a line number means something."""
    return json.dumps(document, indent=2).encode()


class FakeHub:
    def __init__(self) -> None:
        self.script: deque[Scripted] = deque()
        self.seen: list[Seen] = []
        self.served_dates: list[str] = []  # the date of every reading served in a 200 curve
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with hub._lock:
                    hub.seen.append(Seen(time.monotonic(), parts.path, query, self.headers.get("Authorization")))
                    scripted = hub.script.popleft() if hub.script else Scripted()
                body = scripted.body
                if body is None:
                    document = curve(
                        query["usage_point_id"],
                        dt.date.fromisoformat(query["start"]),
                        dt.date.fromisoformat(query["end"]),
                    )
                    with hub._lock:
                        hub.served_dates.extend(r["date"] for r in document["meter_reading"]["interval_reading"])
                    body = dumps(document)
                self.send_response(scripted.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def queue(self, *answers: Scripted) -> None:
        with self._lock:
            self.script.extend(answers)

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests, as the hub saw them arrive."""
        times = sorted(s.at for s in self.seen)
        return [b - a for a, b in itertools.pairwise(times)]

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
