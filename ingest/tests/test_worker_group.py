"""Ingest workers in one shared subscription: they split a stream, and one that stops leaves the group."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ingest.testing import RunningWorker, drop_session, wait_for
from ingest.tests.test_worker import Meter, ingest_account, meter, reading  # noqa: F401 - fixtures
from mdms.core.timeseries import readings as store

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_workers(ingest_account: None, mongo: Any) -> Iterator[tuple[RunningWorker, RunningWorker]]:  # noqa: F811
    pair = (RunningWorker("test-group"), RunningWorker("test-group"))
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
