"""A restarted simulator carries on: registers go on from where they were and nothing is sent twice."""

from __future__ import annotations

import datetime as dt

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
