"""The fleet-wide send rate of commands, shared by every process that sends them.

A generic cell rate algorithm on one Redis key: the key holds the theoretical time at which the
next command may leave; a send takes the slot and pushes that time on by 1/rate. Redis's own
clock decides (TIME inside the script), so dispatchers on several machines need no common clock,
and a dispatcher that dies holds nothing.
"""

from __future__ import annotations

from django.conf import settings

from mdms.core.stored_batches import connection

KEY = "mdms:commands:throttle"

# Takes up to ARGV[3] slots: returns {slots taken, microseconds to wait when none was free}.
_TAKE = """
local interval_us = tonumber(ARGV[1])
local burst_us = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local free = math.floor((now + burst_us - tat) / interval_us) + 1
if free <= 0 then return {0, tat - burst_us - now} end
local taken = math.min(free, wanted)
local next_tat = tat + taken * interval_us
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {taken, 0}
"""


# Slots a late sender may catch up at once: a tenth of a second's worth. Without it every pause of
# the dispatcher (a query, a garbage collection) would be lost for good and the fleet would get less
# than its rate; with it, any window of t seconds still holds at most rate * t + BURST commands.
BURST_S = 0.1


class Throttle:
    """At most `rate_per_s` commands a second across the fleet, with a burst of `burst` at once
    (by default a tenth of a second's worth, at least 1)."""

    def __init__(self, *, rate_per_s: float | None = None, burst: int | None = None) -> None:
        rate = settings.COMMANDS_RATE_PER_S if rate_per_s is None else rate_per_s
        self.rate_per_s = rate
        self.burst = max(1, int(rate * BURST_S)) if burst is None else max(1, burst)
        self.interval_us = max(1, round(1_000_000 / rate))
        self.burst_us = self.interval_us * (self.burst - 1)
        self._script = connection().register_script(_TAKE)

    def take(self) -> float:
        """Take a slot if one is free: 0.0, else the seconds until one will be."""
        taken, wait_s = self.take_many(1)
        return 0.0 if taken else wait_s

    def take_many(self, wanted: int) -> tuple[int, float]:
        """Take up to `wanted` free slots: (slots taken, and when none was free, the seconds until one is)."""
        taken, wait_us = self._script(keys=[KEY], args=[self.interval_us, self.burst_us, max(1, wanted)])
        return int(taken), int(wait_us) / 1_000_000
