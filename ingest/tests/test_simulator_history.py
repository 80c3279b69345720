"""The demo's history in bulk (ingest.simulator.history): the meter model's own readings and events,
stored through the ingest pipeline, rolled up for every day, past outages as closed incidents of their
own times; a second run stores nothing new, in one process or shared among forked ones.

Real PostgreSQL, MongoDB and Redis.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from ingest.simulator import history
from ingest.simulator.faults import Fault, FaultKind, FaultPlan
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from mdms.core import stored_batches
from mdms.core.localtime import local_day
from mdms.core.mqtt.topics import Kind
from mdms.core.reading_fields import READING_FIELD_NAMES
from mdms.core.timeseries import ROLLUPS_DAILY, collection
from mdms.core.timeseries import readings as store
from monitoring.models import IncidentMeter, OutageIncident

START = dt.datetime(2026, 4, 10, 6, 7, tzinfo=dt.UTC)  # not on an interval: as `now - 190 days` is not
END = START + dt.timedelta(days=10)
OFF = START + dt.timedelta(days=4, hours=9, minutes=3, seconds=20)
ON = OFF + dt.timedelta(minutes=95)
PLAN = FaultPlan(
    # Copies, late re-sends and a drifting clock on top of the model, and one outage of both meters.
    rates={FaultKind.DUPLICATE: 0.5, FaultKind.OUT_OF_ORDER: 0.5, FaultKind.CLOCK_DRIFT: 0.2},
    explicit=(Fault("*", FaultKind.OUTAGE, OFF, ON),),
)


def _meters(*people: Any) -> list[SimulatedMeter]:
    return [SimulatedMeter(profile_for(p.meter.serial, seed=5), 5, fault_plan=PLAN) for p in people]


def _sent(meter: SimulatedMeter, end: dt.datetime = END) -> dict[dt.datetime, dict[str, Any]]:
    """What the meter model sends over (START, end], one reading per ts (the first sent), as stored fields."""
    emissions, _ = meter.advance(START, end)
    sent: dict[dt.datetime, dict[str, Any]] = {}
    for emission in emissions:
        if emission.kind is Kind.READINGS:
            ts = dt.datetime.fromisoformat(emission.payload["ts"].replace("Z", "+00:00"))
            sent.setdefault(ts, {k: v for k, v in emission.payload.items() if k in READING_FIELD_NAMES})
    return sent


def _stored(meter_pk: int) -> dict[dt.datetime, dict[str, Any]]:
    return {
        doc["ts"].replace(tzinfo=dt.UTC): {k: v for k, v in doc.items() if k in READING_FIELD_NAMES}
        for doc in store.readings_for_meter(meter_pk, None, None)
    }


def _check(people: list[Any], result: history.HistoryResult, end: dt.datetime = END) -> None:
    twins = _meters(*people)
    for person, twin in zip(people, twins, strict=True):
        assert _stored(person.meter.pk) == _sent(twin, end), "the stored history is what the meter model sends"
    # The meters carry on where their history stopped: registers and last interval as the model's.
    assert [m.state() for m in result.meters] == [t.state() for t in twins]
    # A daily rollup for every local day of the history, every meter.
    days = {local_day(START) + dt.timedelta(days=n) for n in range((local_day(end) - local_day(START)).days + 1)}
    for person in people:
        rolled = {doc["day"] for doc in collection(ROLLUPS_DAILY).find({"meter": person.meter.pk})}
        assert rolled == {day.isoformat() for day in days}
    # The outage of both meters on one feeder: one incident of its own time, closed by the restores.
    (incident,) = OutageIncident.objects.all()
    assert (incident.started_at, incident.ended_at, incident.status) == (OFF, ON, OutageIncident.Status.CLOSED)
    out = IncidentMeter.objects.filter(incident=incident).order_by("meter_id")
    assert [(row.meter_id, row.out_since, row.restored_at) for row in out] == [
        (person.meter.pk, OFF, ON) for person in sorted(people, key=lambda p: p.meter.pk)
    ]
    # Nothing handed to the followers: the history's rollups and outages are done.
    assert stored_batches.connection().xlen(stored_batches.STREAM) == 0


@pytest.fixture
def empty_stream() -> Any:
    stored_batches.connection().delete(stored_batches.STREAM)
    yield
    stored_batches.connection().delete(stored_batches.STREAM)


def test_stretches_are_cut_at_utc_midnights() -> None:
    parts = history.stretches(START, END, days=4)
    assert parts[0][0] == START and parts[-1][1] == END
    assert all(b.hour == 0 and b.minute == 0 for _a, b in parts[:-1])
    assert all(a == b for (_x, a), (b, _y) in itertools.pairwise(parts))


@pytest.mark.django_db
def test_the_history_is_the_meter_models_and_a_second_run_stores_nothing(
    alice: Any, bob: Any, mongo: Any, empty_stream: Any
) -> None:
    result = history.make_history(_meters(alice, bob), start=START, end=END, workers=1, progress=False)
    _check([alice, bob], result)
    assert result.totals.stored == result.totals.readings - result.totals.duplicates > 0
    assert result.totals.duplicates > 0, "the meters' copies were recognised"

    # Again from scratch (a second clone, the state file lost): everything is recognised as stored.
    again = history.make_history(_meters(alice, bob), start=START, end=END, workers=1, progress=False)
    assert again.totals.stored == 0 and again.totals.conflicting == 0
    assert again.totals.duplicates == again.totals.readings
    # Carried on from its saved state (a restart once it was done): nothing left to make.
    meters = _meters(alice, bob)
    for meter, done in zip(meters, result.meters, strict=True):
        meter.resume(done.state())
    resumed = history.make_history(meters, start=START, end=END, workers=1, progress=False)
    assert resumed.totals.readings == 0
    assert [m.state() for m in resumed.meters] == [m.state() for m in result.meters]
    _check([alice, bob], result)  # the replays of the outage recorded it once


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("role_groups")  # a transactional test's flush drops the groups the migrations made
def test_shared_among_processes_the_history_is_the_same(alice: Any, bob: Any, mongo: Any, empty_stream: Any) -> None:
    saved: list[dict[str, Any]] = []
    result = history.make_history(
        _meters(alice, bob), start=START, end=END, workers=2, progress=False, save_states=saved.append
    )
    assert result.workers == 2
    _check([alice, bob], result)
    # Each stretch done is reported with the meters' states (what --state saves for a restart).
    assert saved and set(saved[-1]) == {alice.meter.serial, bob.meter.serial}
    assert saved[-1] == {m.serial: m.state() for m in result.meters}


@pytest.mark.django_db
def test_a_history_stopped_midway_carries_on_from_its_state_without_a_copy(
    alice: Any, bob: Any, mongo: Any, empty_stream: Any
) -> None:
    saved: list[dict[str, Any]] = []
    end = START + dt.timedelta(days=30)  # 4 stretches: stopped after the first or the second
    first = history.make_history(
        _meters(alice, bob), start=START, end=end, workers=1, progress=False,
        save_states=saved.append, should_stop=lambda: bool(saved),
    )  # fmt: skip
    assert first.stopped and 1 <= len(saved) <= 2
    assert 0 < first.totals.stored < 2 * 96 * 25
    assert not OutageIncident.objects.exists(), "the outages wait for the whole history"
    # The restart (make run again): the meters resume from the state file, a little later.
    meters = _meters(alice, bob)
    for meter in meters:
        meter.resume(saved[-1][meter.serial])
    rest = history.make_history(meters, start=START + dt.timedelta(minutes=3), end=end, workers=1, progress=False)
    # Nothing made twice (the copies the meters themselves send are dropped as always), nothing lost.
    assert rest.totals.conflicting == 0
    assert first.totals.stored + rest.totals.stored == sum(len(_sent(m, end)) for m in _meters(alice, bob))
    _check([alice, bob], rest, end)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("role_groups")
def test_the_last_days_of_the_history_are_judged_in_the_background(alice: Any, mongo: Any, empty_stream: Any) -> None:
    from mdms.core.timeseries import ANOMALY_BASELINES
    from mdms.core.timeseries import anomalies as anomaly_store

    sag = Fault("*", FaultKind.VOLTAGE_SAG, END - dt.timedelta(hours=5), END - dt.timedelta(hours=4, minutes=30),
                {"voltage_factor": 0.7})  # fmt: skip
    early = Fault("*", FaultKind.VOLTAGE_SAG, START + dt.timedelta(days=1), START + dt.timedelta(days=1, minutes=30),
                  {"voltage_factor": 0.7})  # fmt: skip
    meters = [SimulatedMeter(profile_for(alice.meter.serial, seed=5), 5, fault_plan=FaultPlan(explicit=(early, sag)))]
    result = history.make_history(meters, start=START, end=END, workers=1, progress=False)
    history.judge_recent(sorted(result.totals.meter_pks), end=END).join(timeout=120)
    pk = alice.meter.pk
    # The sag of the last day is judged; the one of 9 days before is not (older history keeps its rollups).
    assert anomaly_store.count_anomalies(meter_pk=pk, since=END - dt.timedelta(days=1), until=END) >= 1
    assert anomaly_store.count_anomalies(meter_pk=pk, until=END - dt.timedelta(days=3)) == 0
    assert collection(ANOMALY_BASELINES).count_documents({"_id": pk}) == 1
