"""A restarted simulator carries on: registers go on from where they were and nothing is sent twice."""

from __future__ import annotations

import datetime as dt
import json

from ingest.simulator.faults import FaultKind, FaultPlan
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from mdms.core.mqtt.topics import Kind

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _readings(meter: SimulatedMeter, start: dt.datetime, end: dt.datetime) -> list[dict[str, object]]:
    emissions, _ = meter.advance(start, end)
    return [e.payload for e in emissions if e.kind is Kind.READINGS]


def test_a_resumed_meter_continues_its_registers_without_resending() -> None:
    continuous = SimulatedMeter(profile_for("RESUME1", seed=3), 3)
    straight = _readings(continuous, START, START + dt.timedelta(days=2))

    first = SimulatedMeter(profile_for("RESUME1", seed=3), 3)
    day_one = _readings(first, START, START + dt.timedelta(days=1))
    restarted = SimulatedMeter(profile_for("RESUME1", seed=3), 3)
    restarted.resume(first.state())
    # A catch-up that overlaps what was sent before the restart sends only the new intervals.
    day_two = _readings(restarted, START + dt.timedelta(hours=12), START + dt.timedelta(days=2))

    assert len(day_one) + len(day_two) == len(straight) == 192
    assert day_one + day_two == straight


def test_a_resumed_meter_makes_exactly_what_it_would_have_made_had_it_never_stopped() -> None:
    # Every fault often (a drifting clock, readings held back, a stuck register, outages), restarts
    # at any moment of the day: what was under way then goes on (SimulatedMeter._warm_up).
    kinds = set(FaultKind) - {FaultKind.METER_EXCHANGE, FaultKind.REGISTER_ROLLOVER}
    plan = FaultPlan(rates=dict.fromkeys(kinds, 0.6))
    start, end = START + dt.timedelta(hours=6, minutes=7), START + dt.timedelta(days=6)
    for n in range(12):
        profile = profile_for(f"RESUME{n:02d}", seed=2, solar_share=0.5)
        straight, _ = SimulatedMeter(profile, 2, fault_plan=plan).advance(start, end)
        first = SimulatedMeter(profile, 2, fault_plan=plan)
        cut = start + dt.timedelta(days=3, hours=2 * n, minutes=15 * (n % 4))
        before, _ = first.advance(start, cut)
        restarted = SimulatedMeter(profile, 2, fault_plan=plan)
        restarted.resume(json.loads(json.dumps(first.state())))
        after, _ = restarted.advance(cut - dt.timedelta(hours=1), end)
        assert [(e.at, e.kind, e.payload) for e in before + after] == [(e.at, e.kind, e.payload) for e in straight]
