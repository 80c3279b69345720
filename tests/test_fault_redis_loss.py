"""Redis restarted empty in the middle of a stream: the followers catch up from MongoDB.

The stored-batches stream and its consumer groups live only in Redis's memory. A private Redis
(never the shared one) serves the stream here; it is shut down without saving partway through a
numbered stream, while the followers are behind, and started again empty. Every stored reading
must still reach the rollups (counted once), anomaly detection (each planted anomaly once) and the
outage follower's last-seen record, within a bounded time.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    PLANTED_EVERY,
    STEP,
    T0,
    PublishingMeter,
    bounded_wait,
    expected_kwh,
    people,
    publish_steadily,
    rollup_totals,
)

from billing import rollups
from ingest.testing import RunningWorker, drop_session
from mdms.core import stored_batches
from mdms.core.timeseries import ANOMALIES, METER_LAST_SEEN, collection
from mdms.core.timeseries import readings as store
from monitoring import outages
from monitoring import services as detection
from scripts import services

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]
TOTAL = 300  # readings per meter
METERS = 3


def follow_all() -> None:
    """What beat runs every 5 seconds: the three followers of the stream."""
    rollups.rollups_follow(consumer="fault-test")
    detection.anomalies_detect_pending(consumer="fault-test")
    outages.outages_process_pending(consumer="fault-test")


def covered(meter_pks: list[int]) -> bool:
    for pk in meter_pks:
        if rollup_totals(pk) != (TOTAL, expected_kwh(TOTAL)):
            return False
        if collection(ANOMALIES).count_documents({"meter_id": pk}) < TOTAL // PLANTED_EVERY:
            return False
        seen = collection(METER_LAST_SEEN).find_one({"_id": pk})
        if seen is None or seen.get("ts") != T0 + STEP * TOTAL:
            return False
    return True


def test_redis_restarted_empty_mid_stream_costs_the_followers_time_never_a_reading(
    private_dir: Path, settings: Any, mongo: Any, role_groups_made: None, capsys: Any
) -> None:
    redis_server = services.private_redis(private_dir / "redis")
    redis_server.start()
    settings.REDIS_URL = f"redis://127.0.0.1:{redis_server.port}/0"
    meters = [PublishingMeter(person) for person in people(METERS, "redis")]
    pks = [m.pk for m in meters]
    worker = RunningWorker("fault-redis", session_expiry_s=120)
    sent = [0]
    stop = threading.Event()
    publisher = threading.Thread(
        target=publish_steadily, args=(meters, TOTAL), kwargs={"per_second": 30.0, "sent": sent, "stop": stop}
    )
    try:
        publisher.start()
        # The followers keep up with the first third...
        while sent[0] < TOTAL // 3:
            follow_all()
            time.sleep(0.2)
        follow_all()
        # ...then fall behind (a busy Celery worker), and Redis goes away with what they had not read.
        bounded_wait(lambda: sent[0] >= 2 * TOTAL // 3, 60, "two thirds published")
        bounded_wait(lambda: store.count_distinct_readings(pks) >= METERS * (2 * TOTAL // 3), 60, "two thirds stored")
        unread = stored_batches.backlog(rollups.GROUP)
        assert unread > 0, "the followers had nothing unread: the fault would prove nothing"
        subprocess.run(["redis-cli", "-p", str(redis_server.port), "shutdown", "nosave"], check=False)
        assert redis_server.process is not None
        redis_server.process.wait(20)
        redis_server.start()
        restarted = time.monotonic()
        assert stored_batches.connection().exists(stored_batches.STREAM) in (0, 1)
        publisher.join(120)
        assert sent[0] == TOTAL
        bounded_wait(lambda: store.count_distinct_readings(pks) == METERS * TOTAL, 120, "every reading stored")

        def caught_up() -> bool:
            follow_all()
            return covered(pks)

        bounded_wait(caught_up, 180, "the followers to cover every stored reading", pause=1.0)
        recovery_s = time.monotonic() - restarted
        for pk in pks:
            assert rollup_totals(pk) == (TOTAL, expected_kwh(TOTAL))  # every reading, none twice
            planted = collection(ANOMALIES).distinct("timestamp", {"meter_id": pk, "rule": "voltage_swell"})
            assert len(planted) == TOTAL // PLANTED_EVERY
            assert collection(ANOMALIES).count_documents({"meter_id": pk, "rule": "voltage_swell"}) == len(planted)
        with capsys.disabled():
            print(
                f"\n[fault redis-loss] {unread} stream entries unread when Redis restarted empty; "
                f"{METERS * TOTAL} readings stored, 0 lost to the followers, 0 counted twice; "
                f"followers covered everything {recovery_s:.1f} s after the restart"
            )
    finally:
        stop.set()
        publisher.join(30)
        worker.stop(timeout=30)
        drop_session(worker.worker.client_id)
        for meter in meters:
            meter.close()
        redis_server.kill()
