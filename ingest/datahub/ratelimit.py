"""At most one request per interval to a data hub, across every process that pulls from it.

Several Celery workers and a backfill may pull at once; the hub's limit is on all of us together,
so the limiter is a Redis key per hub host: a request may start only once it has set the key
(SET NX PX), and the key lives for the interval. Redis expires keys on its own clock, so the
processes need no common clock, and a process that dies holding the key frees it after the interval.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from django.conf import settings

from mdms.core.stored_batches import connection

KEY_PREFIX = "mdms:datahub:next-request:"
# Added to the interval: requests leave us spaced by the interval, but reach the hub after a
# network delay that varies; this much slack keeps their arrivals spaced too.
SAFETY_MS = 50
# Waiters wake at slightly different times, so that they do not all race for the key at once.
WAKE_JITTER_S = 0.02


class RateLimiter:
    """Spaces the requests to each hub host by at least min_interval_s."""

    def __init__(
        self,
        *,
        min_interval_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        interval = settings.DATAHUB_MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self.interval_ms = int(interval * 1000) + SAFETY_MS
        self.sleep = sleep

    def wait(self, host: str) -> float:
        """Block until a request to host may start, and claim that slot; the seconds waited."""
        redis = connection()
        key = KEY_PREFIX + host.lower()
        waited = 0.0
        while not redis.set(key, b"1", nx=True, px=self.interval_ms):
            remaining_ms = redis.pttl(key)
            # -2: expired between our SET and PTTL; -1 cannot happen (the key is always set with PX).
            pause = max(remaining_ms, 1) / 1000 + random.uniform(0, WAKE_JITTER_S)
            self.sleep(pause)
            waited += pause
        return waited
