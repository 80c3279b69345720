"""The per-hub rate limit holds across threads and processes: requests reach the hub a second apart."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ingest.datahub import client
from ingest.datahub.ratelimit import RateLimiter
from ingest.tests.datahub_fake import ROUTE, FakeHub

BASE_DIR = Path(__file__).resolve().parents[2]
# A second process, as a second Celery worker would be: its own interpreter, Redis connection and limiter.
OTHER_PROCESS = """
import datetime as dt, sys
import django
django.setup()
from ingest.datahub import client
from ingest.datahub.ratelimit import RateLimiter
request = client.LoadCurveRequest(base_url=sys.argv[1], path=sys.argv[2], token="t", usage_point_id="2",
                                  start=dt.date(2026, 1, 10), end=dt.date(2026, 1, 11))
policy = client.RetryPolicy(max_attempts=1, base_s=0.1, max_wait_s=1.0, timeout_s=5.0)
for _ in range(2):
    client.fetch_load_curve(request, policy=policy, limiter=RateLimiter(min_interval_s=1.0))
"""


def fetch(base_url: str, usage_point_id: str) -> None:
    request = client.LoadCurveRequest(
        base_url=base_url,
        path=ROUTE,
        token="t",
        usage_point_id=usage_point_id,
        start=dt.date(2026, 1, 10),
        end=dt.date(2026, 1, 11),
    )
    policy = client.RetryPolicy(max_attempts=1, base_s=0.1, max_wait_s=1.0, timeout_s=5.0)
    client.fetch_load_curve(request, policy=policy, limiter=RateLimiter(min_interval_s=1.0))


def test_requests_to_one_hub_from_two_threads_and_another_process_are_a_second_apart(
    hub: FakeHub, settings: Any
) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mdms.settings", "REDIS_URL": settings.REDIS_URL}
    other = subprocess.Popen([sys.executable, "-c", OTHER_PROCESS, hub.base_url, ROUTE], cwd=BASE_DIR, env=env)
    # Start the threads once the other process has made its first request: they race its second.
    deadline = time.monotonic() + 30
    while not any(s.query["usage_point_id"] == "2" for s in hub.seen) and time.monotonic() < deadline:
        time.sleep(0.01)
    threads = [threading.Thread(target=fetch, args=(hub.base_url, "1")) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other.wait(timeout=60) == 0
    assert sorted(s.query["usage_point_id"] for s in hub.seen) == ["1", "1", "2", "2"]
    assert min(hub.gaps()) >= 1.0


def test_two_hubs_do_not_wait_for_each_other(settings: Any) -> None:
    with FakeHub() as first, FakeHub() as second:
        started = threading.Event()

        def both() -> None:
            started.set()
            fetch(first.base_url, "1")
            fetch(second.base_url, "1")

        worker = threading.Thread(target=both)
        worker.start()
        worker.join(timeout=30)
        assert started.is_set()
        (a,) = first.seen
        (b,) = second.seen
        assert b.at - a.at < 1.0
