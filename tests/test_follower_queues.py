"""Every stored-batches follower has a queue and a worker of its own, under `make run` and in production,
and its beat ticks are never all discarded while a run of its kind works."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from mdms.schedule import BEAT_SCHEDULE
from monitoring.tasks import DETECT_BUDGET_S, OUTAGES_BUDGET_S

ROOT = Path(__file__).resolve().parent.parent
FOLLOWERS = {
    "billing.follow_stored_batches": "rollups",
    "monitoring.detect_anomalies": "detect",
    "monitoring.track_outages": "outages",
}


def _queues_of(command: str) -> set[str]:
    """The queues a `celery worker` command consumes (without -Q, Celery's default queue only)."""
    words = shlex.split(command)
    if "worker" not in words:
        return set()
    if "-Q" not in words:
        return {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
    return set(words[words.index("-Q") + 1].split(","))


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def _compose_commands() -> dict[str, str]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {name: str(spec["command"]) for name, spec in compose["services"].items() if "command" in spec}


def test_each_follower_is_routed_to_a_queue_of_its_own() -> None:
    routes = {task: settings.CELERY_TASK_ROUTES[task]["queue"] for task in FOLLOWERS}
    assert routes == FOLLOWERS
    assert len(set(routes.values())) == len(routes)


def test_each_follower_queue_has_one_worker_that_consumes_nothing_else() -> None:
    for name, commands in (("Procfile", _procfile()), ("docker-compose.yml", _compose_commands())):
        consumers = {process: _queues_of(command) for process, command in commands.items()}
        for queue in FOLLOWERS.values():
            workers = [process for process, queues in consumers.items() if queue in queues]
            assert len(workers) == 1, (name, queue, workers)
            assert consumers[workers[0]] == {queue}, (name, queue)


def test_a_follower_tick_waits_longer_than_a_run_before_it_is_dropped() -> None:
    budgets = {"monitoring.detect_anomalies": DETECT_BUDGET_S, "monitoring.track_outages": OUTAGES_BUDGET_S}
    for entry in BEAT_SCHEDULE.values():
        if entry["task"] in FOLLOWERS:
            expires = entry.get("options", {}).get("expires")
            # A tick waits only behind one run of its own kind (its own worker); it must outlive it.
            assert expires is None or expires > 4 * budgets.get(entry["task"], 10.0), entry


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_through_the_broker_the_rollup_worker_runs_its_follower_and_never_takes_another_kinds_run(
    role_groups: None, alice: Any, mongo: Any
) -> None:
    """A rollups-only worker (as in the Procfile): the rollup follower's run is done by it while the
    outage follower's runs stay in their own queue for their own worker, however many there are."""
    from celery.contrib.testing.worker import start_worker

    from billing import rollups
    from billing.tasks import follow_stored_batches
    from ingest.testing import wait_for
    from mdms.celery import app
    from mdms.core import stored_batches
    from monitoring import outages
    from monitoring.tasks import track_outages
    from monitoring.tests import helpers

    client = stored_batches.connection()
    client.delete(stored_batches.STREAM, "outages", "rollups")
    end = dt.datetime(2026, 9, 17, tzinfo=dt.UTC)
    readings = list(helpers.household(alice.meter.pk, end - dt.timedelta(days=1), end))
    helpers.store(readings)
    stored_batches.publish(
        kind="readings", meter_pks=[alice.meter.pk], min_ts=readings[0]["ts"], max_ts=end, count=len(readings)
    )
    assert stored_batches.backlog(rollups.GROUP) == stored_batches.backlog(outages.OUTAGES_GROUP) == 1
    try:
        with start_worker(
            app, pool="solo", queues=["rollups"], perform_ping_check=False, loglevel="WARNING", shutdown_timeout=15
        ):
            for _tick in range(3):
                track_outages.delay()
            follow_stored_batches.delay()
            wait_for(lambda: stored_batches.backlog(rollups.GROUP) == 0, 60, "the rollup follower's run")
        assert client.llen("outages") == 3
        assert stored_batches.backlog(outages.OUTAGES_GROUP) == 1
    finally:
        client.delete(stored_batches.STREAM, "outages", "rollups")
