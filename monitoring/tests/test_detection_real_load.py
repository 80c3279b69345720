"""Detection tuned on a real house (bench/realdata.py): its own load's voltage drop and its standing
load's power factor are not anomalies; a voltage step the load does not explain still is."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pytest

from monitoring.detection import MeterSpec, rules, statistical

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
METER = MeterSpec(pk=1)


def sceaux_like_history(days: int = 28) -> list[dict[str, object]]:
    """A house whose service cable drops 0.4 V per ampere it draws, on a grid at 241 V +- 1 V."""
    rng = random.Random(19)
    readings = []
    for k in range(1, days * 96 + 1):
        current = rng.choice([1.5, 2.0, 3.0, 5.0, 8.0, 15.0, 30.0])
        readings.append(
            {
                "ts": START + dt.timedelta(minutes=15 * k),
                "current_a": current,
                "voltage_v": 241.0 + rng.uniform(-1.0, 1.0) - 0.4 * current,
            }
        )
    return readings


def judge(fields: dict[str, object], *, voltage_v: float, current_a: float) -> list[statistical.Finding]:
    reading = {"ts": START + dt.timedelta(days=29, hours=20), "voltage_v": voltage_v, "current_a": current_a}
    return statistical.check(METER, reading, fields, PARIS)


def test_a_voltage_drop_the_meters_own_load_explains_is_not_flagged() -> None:
    fields = statistical.baseline(sceaux_like_history(), PARIS, 900)
    assert fields["voltage_v"]["load_slope_v_per_a"] == pytest.approx(0.4, abs=0.05)
    # 40 A of kettle, oven and heater: 16 V below the no-load voltage, and what the cable does.
    findings = judge(fields, voltage_v=225.0, current_a=40.0)
    assert [f for f in findings if "voltage_v" in f.fields] == []


def test_a_voltage_step_the_load_does_not_explain_is_flagged() -> None:
    fields = statistical.baseline(sceaux_like_history(), PARIS, 900)
    (finding,) = [f for f in judge(fields, voltage_v=226.0, current_a=2.0) if "voltage_v" in f.fields]
    assert finding.rule == "statistical" and finding.fields == ("voltage_v",)
    expected = finding.baseline["voltage_v"]["expected"]  # type: ignore[index]
    assert 239.0 < expected < 241.0  # what the meter should read at 2 A


def test_a_households_standing_load_power_factor_is_not_an_alarm() -> None:
    fridge = {"power_w": 400.0, "power_factor": 0.72}
    assert [f.rule for f in rules.check(METER, fridge, None)] == []
    heater_with_a_bad_motor = {"power_w": 1500.0, "power_factor": 0.72}
    assert [f.rule for f in rules.check(METER, heater_with_a_bad_motor, None)] == ["power_factor_low"]
