"""Injected faults show in what the meter sends, and each one is labelled."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from ingest.simulator.faults import Fault, FaultKind, FaultPlan, LabelWriter
from ingest.simulator.meter import Emission, SimulatedMeter
from ingest.simulator.profiles import profile_for
from mdms.core.mqtt.topics import Kind

START = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)


def run(
    plan: FaultPlan, *, days: int = 3, seed: int = 4, serial: str = "FLT0001"
) -> tuple[list[Emission], list[Fault]]:
    meter = SimulatedMeter(profile_for(serial, seed=seed, has_solar=False), seed, fault_plan=plan)
    emissions, faults = meter.advance(START, START + dt.timedelta(days=days))
    return emissions + meter.flush(), faults


def when(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def covered(emissions: list[Emission], fault: Fault) -> list[dict[str, Any]]:
    return [e.payload for e in emissions if e.kind is Kind.READINGS and fault.covers(e.at)]


def test_voltage_sag_and_swell_leave_the_normal_band_only_where_labelled() -> None:
    emissions, faults = run(FaultPlan(rates={FaultKind.VOLTAGE_SAG: 2, FaultKind.VOLTAGE_SWELL: 2}))
    assert {f.kind for f in faults} == {FaultKind.VOLTAGE_SAG, FaultKind.VOLTAGE_SWELL}
    for fault in faults:
        rows = covered(emissions, fault)
        assert rows
        for row in rows:
            assert row["voltage_v"] < 0.9 * 230 if fault.kind is FaultKind.VOLTAGE_SAG else row["voltage_v"] > 1.1 * 230
    outside = [e.payload for e in emissions if not any(f.covers(e.at) for f in faults)]
    assert all(0.97 * 230 < row["voltage_v"] < 1.03 * 230 for row in outside)


def test_frequency_excursion_and_over_current_show_in_the_readings() -> None:
    emissions, faults = run(FaultPlan(rates={FaultKind.FREQUENCY_EXCURSION: 2, FaultKind.OVER_CURRENT: 2}))
    assert {f.kind for f in faults} == {FaultKind.FREQUENCY_EXCURSION, FaultKind.OVER_CURRENT}
    for fault in faults:
        for row in covered(emissions, fault):
            if fault.kind is FaultKind.FREQUENCY_EXCURSION:
                assert abs(row["frequency_hz"] - 50) > 0.2
            else:
                assert row["current_a"] > 60


def test_an_outage_sends_a_last_gasp_then_silence_then_power_on() -> None:
    emissions, faults = run(FaultPlan(rates={FaultKind.OUTAGE: 1}))
    assert faults and all(f.kind is FaultKind.OUTAGE for f in faults)
    events = [e.payload for e in emissions if e.kind is Kind.EVENTS]
    assert [e["type"] for e in events] == ["power_off", "power_on"] * len(faults)
    for fault, (off, on) in zip(faults, zip(events[::2], events[1::2], strict=True), strict=True):
        assert when(off["ts"]) == fault.start and when(on["ts"]) == fault.end
        assert not covered(emissions, fault)
    # Registers stand still while the power is off.
    rows = [e.payload for e in emissions if e.kind is Kind.READINGS]
    for previous, current in itertools.pairwise(rows):
        assert current["register_import_kwh"] == round(
            previous["register_import_kwh"] + current["energy_import_kwh"], 3
        )


def test_a_stuck_register_stops_while_energy_keeps_flowing() -> None:
    emissions, faults = run(FaultPlan(rates={FaultKind.STUCK_REGISTER: 1}))
    assert faults
    for fault in faults:
        rows = covered(emissions, fault)
        assert len({row["register_import_kwh"] for row in rows}) == 1
        assert sum(row["energy_import_kwh"] for row in rows) > 0


def test_a_register_going_backwards_is_lower_than_the_reading_before() -> None:
    emissions, faults = run(FaultPlan(rates={FaultKind.REGISTER_BACKWARDS: 1}))
    rows = [e.payload for e in emissions]
    assert faults
    for fault in faults:
        index = next(i for i, e in enumerate(emissions) if fault.covers(e.at))
        assert rows[index]["register_import_kwh"] < rows[index - 1]["register_import_kwh"]


def test_duplicates_and_out_of_order_resends_show_in_the_stream() -> None:
    emissions, faults = run(FaultPlan(rates={FaultKind.DUPLICATE: 1, FaultKind.OUT_OF_ORDER: 1}))
    stamps = [e.payload["ts"] for e in emissions]
    for fault in faults:
        target = next(e.payload["ts"] for e in emissions if fault.covers(when(e.payload["ts"])))
        if fault.kind is FaultKind.DUPLICATE:
            assert stamps.count(target) == 2
        else:
            position = stamps.index(target)
            assert stamps[position - 1] > target  # sent after newer readings
            assert stamps.count(target) == 1


def test_clock_drift_moves_timestamps_off_the_interval_grid() -> None:
    emissions, faults = run(FaultPlan(rates={FaultKind.CLOCK_DRIFT: 1}))
    assert faults
    for fault in faults:
        rows = [e.payload for e in emissions if fault.covers(e.at)]
        offsets = [
            (when(row["ts"]) - e).total_seconds()
            for row, e in zip(rows, [x.at for x in emissions if fault.covers(x.at)], strict=True)
        ]
        assert any(offset != 0 for offset in offsets)
        assert abs(offsets[-1]) >= abs(offsets[0])
    clean = [e.payload for e in emissions if not any(f.covers(e.at) for f in faults)]
    assert all(when(row["ts"]).timestamp() % 900 == 0 for row in clean)


def test_explicit_faults_from_a_plan_file_are_injected_and_labelled(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        "faults:\n"
        "  - {serial: FLT0001, kind: voltage_sag, start: '2026-02-02T18:00:00Z', end: '2026-02-02T18:30:00Z'}\n"
        "  - {serial: OTHER, kind: outage, start: '2026-02-02T10:00:00Z', end: '2026-02-02T11:00:00Z'}\n"
    )
    emissions, faults = run(FaultPlan.parse(str(plan_file)), days=1)
    assert [(f.kind, f.start.hour) for f in faults] == [(FaultKind.VOLTAGE_SAG, 18)]
    assert [row["voltage_v"] < 207 for row in covered(emissions, faults[0])] == [True, True]

    labels = tmp_path / "labels.jsonl"
    writer = LabelWriter(labels)
    writer.write(faults)
    writer.close()
    assert [json.loads(line) for line in labels.read_text().splitlines()] == [
        {
            "serial": "FLT0001",
            "kind": "voltage_sag",
            "start": "2026-02-02T18:00:00Z",
            "end": "2026-02-02T18:30:00Z",
            "details": dict(faults[0].details),
        }
    ]


# A meter exchange needs the fleet and the MDMS (test_simulator_lifecycle); a meter alone ignores it.
@pytest.mark.parametrize("kind", [kind for kind in FaultKind if kind is not FaultKind.METER_EXCHANGE])
def test_every_kind_is_planned_reproducibly_and_never_overlaps(kind: FaultKind) -> None:
    plan = FaultPlan.uniform(0.5)
    first, second = run(plan, days=4)[1], run(plan, days=4)[1]
    assert [f.label() for f in first] == [f.label() for f in second]
    assert kind in {f.kind for f in run(FaultPlan(rates={kind: 3}), days=2)[1]}
    for a, b in itertools.pairwise(first):
        assert not a.overlaps(b)


def test_faults_leave_the_clean_measurements_of_other_intervals_alone() -> None:
    clean, _ = run(FaultPlan())
    faulty, faults = run(FaultPlan(rates={FaultKind.VOLTAGE_SAG: 3}))
    untouched = [e for e in faulty if not any(f.covers(e.at) for f in faults)]
    by_ts = {e.payload["ts"]: e.payload for e in clean}
    assert all(by_ts[e.payload["ts"]]["energy_import_kwh"] == e.payload["energy_import_kwh"] for e in untouched)
