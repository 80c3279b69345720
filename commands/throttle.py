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

# Returns 0 when the slot was taken, else the microseconds to wait before asking again.
_TAKE = """
local interval_us = tonumber(ARGV[1])
local burst_us = tonumber(ARGV[2])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - burst_us - now
if wait > 0 then return wait end
local next_tat = tat + interval_us
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return 0
"""


class Throttle:
    """At most `rate_per_s` commands a second across the fleet, with a burst of `burst` at once."""

    def __init__(self, *, rate_per_s: float | None = None, burst: int = 1) -> None:
        rate = settings.COMMANDS_RATE_PER_S if rate_per_s is None else rate_per_s
        self.interval_us = max(1, round(1_000_000 / rate))
        self.burst_us = self.interval_us * max(0, burst - 1)
        self._script = connection().register_script(_TAKE)

    def take(self) -> float:
        """Take a slot if one is free: 0.0, else the seconds until one will be."""
        wait_us = int(self._script(keys=[KEY], args=[self.interval_us, self.burst_us]))
        return wait_us / 1_000_000
