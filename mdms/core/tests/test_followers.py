"""Stream followers: one run of a kind at a time, and a claim that follows the taker's liveness."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from mdms.core import followers, stored_batches

T0 = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
# Short limits so that the tests take seconds: the production ones are 60 s idle and a 5 s beat.
IDLE_MS = 1_500
BEAT_S = 0.25


@pytest.fixture
def group() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    stored_batches.connection().xgroup_create(stored_batches.STREAM, name, id="$", mkstream=True)
    yield name
    stored_batches.connection().xgroup_destroy(stored_batches.STREAM, name)
    stored_batches.connection().delete(followers.LOCK_PREFIX + name)


def _publish(n: int) -> None:
    for i in range(n):
        ts = T0 + dt.timedelta(minutes=15 * i)
        stored_batches.publish(kind="readings", meter_pks=[1000 + i], min_ts=ts, max_ts=ts, count=1)


def _eventually(check: Callable[[], bool], *, within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_second_run_of_the_same_follower_returns_at_once_and_the_lock_is_free_after(group: str) -> None:
    with followers.follower_run(group, "first") as first:
        assert first is not None
        with followers.follower_run(group, "second") as second:
            assert second is None
        assert followers.running(group)
    assert not followers.running(group)
    with followers.follower_run(group, "third") as third:
        assert third is not None


def test_a_run_longer_than_the_lock_ttl_keeps_its_lock_while_it_beats(group: str) -> None:
    with followers.follower_run(group, "slow", lock_ttl_s=1.0, heartbeat_s=BEAT_S) as slow:
        assert slow is not None
        time.sleep(2.5)  # well past the TTL: only the heartbeat keeps the lock
        assert slow.beats >= 3
        with followers.follower_run(group, "other") as other:
            assert other is None
        assert not slow.lost.is_set()


def test_the_lock_of_a_run_that_died_lapses_after_its_ttl(group: str) -> None:
    # A run that died: its lock is set, and nothing renews it.
    stored_batches.connection().set(followers.LOCK_PREFIX + group, "dead", px=1000)
    with followers.follower_run(group, "next") as blocked:
        assert blocked is None

    def free() -> bool:
        with followers.follower_run(group, "next") as run:
            return run is not None

    assert _eventually(free)


def test_a_slow_taker_that_heartbeats_keeps_its_entries(group: str) -> None:
    _publish(3)
    with followers.follower_run(group, "slow", heartbeat_s=BEAT_S) as slow:
        assert slow is not None
        taken = slow.take(count=10, min_idle_ms=IDLE_MS)
        assert len(taken) == 3
        # Three idle limits go by while it works; another taker asking all along gets nothing of them.
        until = time.monotonic() + 3 * IDLE_MS / 1000
        while time.monotonic() < until:
            assert stored_batches.take(group, "thief", count=10, min_idle_ms=IDLE_MS) == []
            time.sleep(0.2)
        slow.done(entry_id for entry_id, _b in taken)
    assert stored_batches.backlog(group) == 0


def test_the_entries_of_a_taker_that_stopped_heartbeating_go_to_another_after_the_idle_limit(group: str) -> None:
    _publish(3)
    # The first taker takes the entries and dies: nothing acknowledges them, nothing beats.
    dead = stored_batches.take(group, "dead", count=10, min_idle_ms=IDLE_MS)
    assert len(dead) == 3
    assert stored_batches.take(group, "heir", count=10, min_idle_ms=IDLE_MS) == []

    claimed: list[tuple[str, stored_batches.StoredBatch]] = []

    def reclaimed() -> bool:
        claimed.extend(stored_batches.take(group, "heir", count=10, min_idle_ms=IDLE_MS))
        return len(claimed) == 3

    assert _eventually(reclaimed)
    assert sorted(entry_id for entry_id, _b in claimed) == sorted(entry_id for entry_id, _b in dead)


def test_entries_done_are_no_longer_renewed_or_claimed(group: str) -> None:
    _publish(2)
    with followers.follower_run(group, "worker", heartbeat_s=BEAT_S) as run:
        assert run is not None
        taken = run.take(count=10, min_idle_ms=IDLE_MS)
        run.done(entry_id for entry_id, _b in taken)
        time.sleep(2 * BEAT_S)
    time.sleep(IDLE_MS / 1000 + 0.2)
    assert stored_batches.take(group, "heir", count=10, min_idle_ms=IDLE_MS) == []
    assert stored_batches.backlog(group) == 0


def test_a_run_that_lost_its_lock_takes_no_new_work(group: str) -> None:
    _publish(2)
    with followers.follower_run(group, "first", heartbeat_s=BEAT_S) as run:
        assert run is not None
        # The lock vanished under it (lapsed while the process was stalled, or Redis lost it).
        stored_batches.connection().delete(followers.LOCK_PREFIX + group)
        assert _eventually(run.lost.is_set)
        assert run.take(count=10) == []
    assert len(stored_batches.take(group, "next", count=10)) == 2
