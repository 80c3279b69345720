"""MongoDB failover: the primary of a three-member replica set is killed while meters publish.

A private replica set (scripts/services.py, never the shared server) serves this test. The ingest
worker writes with w="majority" and retryable writes (mdms.core.timeseries.client_options): after
the SIGKILL it waits for the new primary, stores the batch it held, and carries on by itself. At the
end the stored set is the sent set, and the rollups count every reading once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from faults_support import (
    PublishingMeter,
    bounded_wait,
    expected_kwh,
    people,
    publish_steadily,
    rollup_totals,
)

from billing import rollups
from ingest.testing import RunningWorker, drop_session
from mdms.core import timeseries
from mdms.core.timeseries import READINGS
from mdms.core.timeseries import readings as store
from scripts import services

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]
TOTAL = 600  # readings per meter, 20 a second per meter: half a minute of stream
METERS = 2


@pytest.fixture
def replica_set(private_dir: Path, settings: Any) -> Iterator[list[services.PrivateServer]]:
    """Three mongods, rs0, with the project's MongoDB settings pointed at them for this test."""
    members = services.private_replica_set(private_dir / "mongodb", nodes=3)
    try:
        for member in members:
            member.start()
        services.replica_set_initiate("127.0.0.1", [m.port for m in members])
        hosts = ",".join(f"127.0.0.1:{m.port}" for m in members)
        settings.MONGODB_URI = f"mongodb://{hosts}/mdms_failover?replicaSet=rs0"
        settings.MONGODB_DB = "mdms_failover"
        timeseries._client = None
        timeseries.ensure_collections()
        yield members
    finally:
        if timeseries._client is not None:
            timeseries._client.close()
        timeseries._client = None
        for member in members:
            member.kill()


def primary_of(members: list[services.PrivateServer]) -> services.PrivateServer | None:
    """The member that is primary, as the members themselves report it (None during an election)."""
    for member in members:
        try:
            with pymongo.MongoClient(
                "127.0.0.1", member.port, directConnection=True, serverSelectionTimeoutMS=1000
            ) as direct:
                hello = direct.admin.command("hello")
        except pymongo.errors.PyMongoError:
            continue
        if hello.get("isWritablePrimary"):
            return member
    return None


class StoredClock:
    """Watches the stored count from a client of its own, and remembers when it last grew."""

    def __init__(self, uri: str, database: str, meter_pks: list[int]) -> None:
        self.client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=30_000)
        self.collection = self.client[database][READINGS]
        self.meter_pks = meter_pks
        self.growth: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        last = -1
        while not self.stop.is_set():
            try:
                count = self.collection.count_documents({"meter": {"$in": self.meter_pks}})
            except pymongo.errors.PyMongoError:
                continue
            if count != last:
                self.growth.append((time.monotonic(), count))
                last = count
            time.sleep(0.05)

    def first_growth_after(self, moment: float) -> float:
        return next(at for at, _count in self.growth if at > moment) - moment

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.close()


def test_primary_killed_mid_stream_the_worker_carries_on_and_stores_each_reading_once(
    replica_set: list[services.PrivateServer], private_dir: Path, settings: Any, role_groups_made: None, capsys: Any
) -> None:
    redis_server = services.private_redis(private_dir / "redis")
    redis_server.start()
    settings.REDIS_URL = f"redis://127.0.0.1:{redis_server.port}/0"
    meters = [PublishingMeter(person) for person in people(METERS, "failover")]
    pks = [m.pk for m in meters]
    worker = RunningWorker("fault-failover", session_expiry_s=300)
    clock = StoredClock(settings.MONGODB_URI, settings.MONGODB_DB, pks)
    sent = [0]
    stop = threading.Event()
    publisher = threading.Thread(
        target=publish_steadily, args=(meters, TOTAL), kwargs={"per_second": 20.0, "sent": sent, "stop": stop}
    )
    try:
        publisher.start()
        bounded_wait(lambda: store.count_distinct_readings(pks) >= METERS * TOTAL // 4, 60, "a quarter stored")
        old_primary = primary_of(replica_set)
        assert old_primary is not None
        old_primary.kill()  # SIGKILL
        killed = time.monotonic()
        survivors = [m for m in replica_set if m is not old_primary]
        elected_after = bounded_wait(lambda: primary_of(survivors) is not None, 60, "a new primary", pause=0.1)
        publisher.join(120)
        assert sent[0] == TOTAL
        bounded_wait(lambda: store.count_distinct_readings(pks) == METERS * TOTAL, 120, "every reading stored")
        pause_s = clock.first_growth_after(killed)
        copies = store.count_stored_readings(pks)
        assert store.count_distinct_readings(pks) == METERS * TOTAL  # 0 lost

        def rolled_up() -> bool:
            rollups.rollups_follow(consumer="fault-test")
            return all(rollup_totals(pk) == (TOTAL, expected_kwh(TOTAL)) for pk in pks)

        bounded_wait(rolled_up, 120, "the rollups of every reading", pause=0.5)
        for pk in pks:
            assert rollup_totals(pk) == (TOTAL, expected_kwh(TOTAL))  # 0 duplicated in any rollup
        with capsys.disabled():
            print(
                f"\n[fault mongodb-failover] primary SIGKILLed; new primary seen after {elected_after:.1f} s; "
                f"storing paused {pause_s:.1f} s; {METERS * TOTAL} sent, {METERS * TOTAL} stored, 0 lost, "
                f"{copies - METERS * TOTAL} duplicate copies stored (harmless), 0 duplicated in any rollup"
            )
    finally:
        stop.set()
        publisher.join(30)
        clock.close()
        worker.stop(timeout=60)
        drop_session(worker.worker.client_id)
        for meter in meters:
            meter.close()
        redis_server.kill()


def test_tiering_a_day_away_on_a_replica_set_reaches_every_member_and_keeps_the_neighbours(
    replica_set: list[services.PrivateServer],
) -> None:
    """Tiering deletes time-series buckets through system.buckets: on a replica set those deletes,
    the staging and the re-inserted neighbours replicate like any write (w="majority"), so every
    member ends with the same rows, and the days either side keep all theirs."""
    import datetime as dt

    from mdms.core.timeseries import archive
    from mdms.core.timeseries.readings import insert_readings, reading_document

    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    step = dt.timedelta(minutes=15)
    documents = [
        reading_document(
            meter_pk=meter,
            ts=start + step * (n + 1),
            received_at=start,
            values={"energy_import_kwh": 0.25},
            interval_s=900,
        )
        for meter in (1, 2)
        for n in range(3 * 96)
    ]
    insert_readings(documents)
    day = (start + dt.timedelta(days=1), start + dt.timedelta(days=2))

    deleted = archive.delete_range("readings", *day)

    assert sum(deleted.values()) == 2 * 96

    def per_member() -> list[int]:
        counts = []
        for member in replica_set:
            with pymongo.MongoClient(
                "127.0.0.1", member.port, directConnection=True, readPreference="secondaryPreferred"
            ) as direct:
                counts.append(direct[timeseries.db().name][READINGS].count_documents({}))
        return counts

    bounded_wait(lambda: per_member() == [2 * 2 * 96] * 3, 30, "every member to hold the two other days")
    assert store.count_distinct_readings([1, 2]) == 2 * 2 * 96
