"""Ingest workers and their subscriptions: in one shared group they split a stream, and one that stops
leaves the group; a worker subscribed alone keeps its session across a graceful stop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ingest.testing import RunningWorker, drop_session, wait_for
from ingest.tests.test_worker import Meter, ingest_account, meter, reading  # noqa: F401 - fixtures
from mdms.core.mqtt import topics
from mdms.core.timeseries import readings as store

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_workers(ingest_account: None, mongo: Any) -> Iterator[tuple[RunningWorker, RunningWorker]]:  # noqa: F811
    pair = (
        RunningWorker("test-group", share_group=topics.SHARE_GROUP),
        RunningWorker("test-group", share_group=topics.SHARE_GROUP),
    )
    yield pair
    for running in pair:
        if running.thread.is_alive():
            running.stop()
        drop_session(running.worker.client_id)


def test_two_workers_split_a_stream_with_nothing_lost_or_stored_twice(
    two_workers: tuple[RunningWorker, RunningWorker],
    meter: Meter,  # noqa: F811
) -> None:
    infos = [meter.publish(reading(i)) for i in range(1000)]
    for info in infos:
        info.wait_for_publish(10)
    wait_for(lambda: store.count_distinct_readings([meter.pk]) == 1000, 60, "1000 readings")
    assert store.count_stored_readings([meter.pk]) == 1000


def test_a_worker_that_stops_leaves_the_group_and_the_other_gets_everything(
    two_workers: tuple[RunningWorker, RunningWorker],
    meter: Meter,  # noqa: F811
) -> None:
    leaving, staying = two_workers
    leaving.stop()
    # Had the stopped worker kept its session in the group, the broker would queue a share of
    # these for it, and they would wait for a worker that is not coming back.
    infos = [meter.publish(reading(i)) for i in range(400)]
    for info in infos:
        info.wait_for_publish(10)
    wait_for(lambda: store.count_distinct_readings([meter.pk]) == 400, 30, "400 readings from the staying worker")
    assert staying.thread.is_alive()


def test_a_worker_subscribed_alone_gets_after_a_restart_what_was_sent_while_it_was_stopped(
    ingest_account: None,  # noqa: F811
    meter: Meter,  # noqa: F811
    mongo: Any,
) -> None:
    running = RunningWorker("test-alone", share_group="", session_expiry_s=60)
    client_id = running.worker.client_id
    try:
        meter.publish(reading(0)).wait_for_publish(10)
        wait_for(lambda: store.count_distinct_readings([meter.pk]) == 1, 30, "the first reading")
        running.stop()  # a graceful stop (a deploy): the session and its subscription stay
        infos = [meter.publish(reading(i)) for i in range(1, 300)]
        for info in infos:
            info.wait_for_publish(10)
        assert all(info.is_published() for info in infos)
        running = RunningWorker("unused", client_id=client_id, share_group="", session_expiry_s=60)
        wait_for(lambda: store.count_distinct_readings([meter.pk]) == 300, 30, "what was sent while it was stopped")
        assert store.count_stored_readings([meter.pk]) == 300
    finally:
        if running.thread.is_alive():
            running.stop()
        drop_session(client_id)
