"""Running a follower of the stored-batches stream: one run of a kind at a time, kept alive by a heartbeat.

A run holds a Redis lock named after its consumer group, with a short TTL that a heartbeat thread
renews while the run works: a second run of the same kind (a beat tick while the first is still at
it, or another worker host) returns at once, and a run whose process died frees the lock within
LOCK_TTL_S. The same heartbeat resets the idle time of the stream entries the run has taken and not
yet acknowledged (XCLAIM ... JUSTID to itself), so `stored_batches.take` re-claims an entry only
from a taker that stopped heartbeating, however long a live one works on it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from mdms.core import stored_batches

logger = logging.getLogger(__name__)

LOCK_PREFIX = "mdms:followers:lock:"
# What each follower has done, as running totals (a Redis hash per group): benchmarks and health pages
# read them; a follower adds to its own after each round.
COUNTS_PREFIX = "mdms:followers:counts:"
# The lock lapses this long after its holder's last heartbeat (a killed worker frees it by then).
LOCK_TTL_S = 30.0
# The heartbeat beats well within both the lock's TTL and the stream's CLAIM_IDLE_MS.
HEARTBEAT_S = 5.0

# Extend the lock only while it is still ours (a lapsed lock may have been taken by another run).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class FollowerRun:
    """One run of a follower: takes and acknowledges entries, and is kept alive while it works."""

    def __init__(self, *, group: str, consumer: str, lock_ttl_s: float, heartbeat_s: float) -> None:
        self.group = group
        self.consumer = consumer
        self.lock_key = LOCK_PREFIX + group
        self.token = uuid.uuid4().hex
        self.lock_ttl_ms = int(lock_ttl_s * 1000)
        self.heartbeat_s = heartbeat_s
        self.beats = 0
        self.lost = threading.Event()
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(
        self, *, count: int, min_idle_ms: int = stored_batches.CLAIM_IDLE_MS
    ) -> list[tuple[str, stored_batches.StoredBatch]]:
        if self.lost.is_set():
            return []  # the lock lapsed (another run may have it): take no new work, finish this round
        entries = stored_batches.take(self.group, self.consumer, count=count, min_idle_ms=min_idle_ms)
        with self._held_lock:
            self._held.update(entry_id for entry_id, _batch in entries)
        return entries

    def done(self, entry_ids: Iterable[str]) -> None:
        ids = list(entry_ids)
        stored_batches.done(self.group, ids)
        with self._held_lock:
            self._held.difference_update(ids)

    def beat(self) -> None:
        """Renew the lock and the idle time of every entry taken and not done."""
        client = stored_batches.connection()
        if not client.eval(_RENEW, 1, self.lock_key, self.token, self.lock_ttl_ms):
            # Another run may hold the lock now: this one finishes its round (entries are idempotent)
            # and takes no more.
            self.lost.set()
        held: list[int | bytes | str | memoryview[int]] = []  # the ids' type as redis-py's stubs spell it
        with self._held_lock:
            held.extend(sorted(self._held))
        if held:
            client.xclaim(
                stored_batches.STREAM, self.group, self.consumer, min_idle_time=0, message_ids=held, justid=True
            )
        self.beats += 1

    def _beating(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except Exception:  # a missed beat is retried at the next; the run itself must not die of it
                logger.exception("follower %s: heartbeat failed", self.group)

    def _start(self) -> bool:
        acquired = stored_batches.connection().set(self.lock_key, self.token, nx=True, px=self.lock_ttl_ms)
        if not acquired:
            return False
        self._thread = threading.Thread(target=self._beating, name=f"heartbeat-{self.group}", daemon=True)
        self._thread.start()
        return True

    def _finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        stored_batches.connection().eval(_RELEASE, 1, self.lock_key, self.token)


@contextmanager
def follower_run(
    group: str, consumer: str, *, lock_ttl_s: float = LOCK_TTL_S, heartbeat_s: float = HEARTBEAT_S
) -> Iterator[FollowerRun | None]:
    """The run of this follower, or None when another run of it holds the lock."""
    run = FollowerRun(group=group, consumer=consumer, lock_ttl_s=lock_ttl_s, heartbeat_s=heartbeat_s)
    if not run._start():
        yield None
        return
    try:
        yield run
    finally:
        run._finish()


def running(group: str) -> bool:
    """Whether a run of this follower holds its lock now (for health pages and tests)."""
    return bool(stored_batches.connection().exists(LOCK_PREFIX + group))


def count(group: str, **amounts: int) -> None:
    """Add to this follower's running totals (e.g. rounds=1, entries=..., readings=...)."""
    pipe = stored_batches.connection().pipeline(transaction=False)
    for name, amount in amounts.items():
        pipe.hincrby(COUNTS_PREFIX + group, name, int(amount))
    pipe.execute()


def counts(group: str) -> dict[str, int]:
    """This follower's running totals since Redis last started empty."""
    raw: dict[str, str] = stored_batches.connection().hgetall(COUNTS_PREFIX + group)  # type: ignore[assignment]
    return {name: int(value) for name, value in raw.items()}
