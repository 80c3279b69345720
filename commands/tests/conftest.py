"""Commands end to end: real broker, real ingest worker, simulated meters, the real dispatcher."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from commands.dispatcher import Dispatcher
from ingest.simulator.faults import LabelWriter
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from ingest.simulator.runner import Behaviour, Fleet, run_realtime
from ingest.testing import RunningWorker, drop_session
from mdms.core.mqtt import broker
from mdms.core.testing import Person, broker_accounts_delete, make_consumer

WAIT_S = 30.0


@pytest.fixture
def people(
    transactional_db: None, role_groups: None, django_capture_on_commit_callbacks: Any
) -> Iterator[list[Person]]:
    """Three consumers whose meters have broker accounts; the accounts are deleted afterwards."""
    tag = uuid.uuid4().hex[:6]
    with django_capture_on_commit_callbacks(execute=True):
        found = [make_consumer(f"cmd{tag}{letter}") for letter in "abc"]
    yield found
    broker_accounts_delete(found)


@pytest.fixture
def worker(mongo: Any) -> Iterator[RunningWorker]:
    broker.ensure_ingest_account()
    running = RunningWorker("test-commands", session_expiry_s=0)
    yield running
    running.stop()
    drop_session(running.worker.client_id)


class SimulatedFleet:
    """The people's meters in "real time" on a fast clock: a wall second is 10 minutes, starting 6 hours
    ago, so that a reading comes every 1.5 s and none is in the future for the next 36 s."""

    def __init__(self, people: list[Person], behaviours: dict[str, Behaviour], late_reply_s: float) -> None:
        self.meters = {
            p.meter.serial: SimulatedMeter(profile_for(p.meter.serial, seed=3, has_solar=False), 3) for p in people
        }
        self.fleet = Fleet(
            list(self.meters.values()),
            {p.meter.serial: p.mqtt_password for p in people},
            behaviours=behaviours,
            late_reply_s=late_reply_s,
            session_expiry_s=0,
        )
        assert len(self.fleet.connect(timeout_s=WAIT_S)) == len(people)
        origin, started = dt.datetime.now(tz=dt.UTC) - dt.timedelta(hours=6), time.monotonic()
        self.clock: Callable[[], dt.datetime] = lambda: (
            origin + dt.timedelta(seconds=(time.monotonic() - started) * 600)
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_realtime,
            kwargs={
                "fleet": self.fleet,
                "labels": LabelWriter(None),
                "should_stop": self.stop.is_set,
                "now": self.clock,
            },
            daemon=True,
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)
        self.fleet.close()


@pytest.fixture
def simulate(people: list[Person]) -> Iterator[Callable[..., SimulatedFleet]]:
    started: list[SimulatedFleet] = []

    def start(behaviours: dict[str, Behaviour] | None = None, late_reply_s: float = 3.0) -> SimulatedFleet:
        fleet = SimulatedFleet(people, behaviours or {}, late_reply_s)
        started.append(fleet)
        return fleet

    yield start
    for fleet in started:
        fleet.close()


@pytest.fixture
def dispatcher(transactional_db: None) -> Iterator[Dispatcher]:
    running = Dispatcher(rate_per_s=200)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(WAIT_S)
    assert not thread.is_alive()


def wait_for(condition: Callable[[], bool], timeout: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
