"""Engineering rules: limits from standards and the meter's ratings, no history needed but the previous reading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdms.core import registers
from monitoring.detection import Finding, MeterSpec

# Voltage tolerance by nominal service voltage: EN 50160 allows 230 V +-10%; ANSI C84.1 range A
# allows +-5% of 120 V service.
VOLTAGE_TOLERANCE: dict[float, float] = {120.0: 0.05, 230.0: 0.10, 240.0: 0.10}
OTHER_VOLTAGE_TOLERANCE = 0.10
# EN 50160: 50 Hz +-1% for 99.5% of a year on interconnected grids.
FREQUENCY_TOLERANCE = 0.01
# Utilities commonly penalise below 0.8 (lagging); at a household's standing load PF means little.
# The UCI house (bench/realdata.py) sits at PF 0.7-0.8 whenever only its fridge and electronics
# run (200-600 W: 43 warnings per meter-month at a 200 W floor), and never below 0.8 above 1 kW,
# where a low PF would say something about the installation.
POWER_FACTOR_MIN = 0.8
POWER_FACTOR_MIN_LOAD_W = 1000.0
# Registers are kept to the watt-hour; anything smaller is rounding.
REGISTER_EPSILON_KWH = 0.0005
# A stuck register is only visible when the interval says energy flowed.
STUCK_MIN_ENERGY_KWH = 0.002


def voltage_tolerance(nominal_v: float) -> float:
    for nominal, tolerance in VOLTAGE_TOLERANCE.items():
        if abs(nominal - nominal_v) < 1.0:
            return tolerance
    return OTHER_VOLTAGE_TOLERANCE


def _num(reading: Mapping[str, Any], name: str) -> float | None:
    value = reading.get(name)
    return float(value) if isinstance(value, int | float) else None


def check(meter: MeterSpec, reading: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[Finding]:
    """Every rule this reading breaks."""
    found: list[Finding] = []
    voltage = _num(reading, "voltage_v")
    if voltage is not None:
        tolerance = voltage_tolerance(meter.nominal_voltage_v)
        low, high = meter.nominal_voltage_v * (1 - tolerance), meter.nominal_voltage_v * (1 + tolerance)
        if not low <= voltage <= high:
            # Half the band again beyond the limit is what trips equipment: critical.
            deep = abs(voltage - meter.nominal_voltage_v) > 1.5 * tolerance * meter.nominal_voltage_v
            found.append(
                Finding(
                    "voltage_sag" if voltage < low else "voltage_swell",
                    ("voltage_v",),
                    "critical" if deep else "warning",
                    {"low_v": round(low, 1), "high_v": round(high, 1)},
                )
            )
    frequency = _num(reading, "frequency_hz")
    if frequency is not None:
        band = meter.nominal_frequency_hz * FREQUENCY_TOLERANCE
        if abs(frequency - meter.nominal_frequency_hz) > band:
            found.append(
                Finding(
                    "frequency_band",
                    ("frequency_hz",),
                    "critical",
                    {"low_hz": meter.nominal_frequency_hz - band, "high_hz": meter.nominal_frequency_hz + band},
                )
            )
    power_factor, power = _num(reading, "power_factor"), _num(reading, "power_w")
    if (
        power_factor is not None
        and abs(power or 0.0) >= POWER_FACTOR_MIN_LOAD_W
        and abs(power_factor) < POWER_FACTOR_MIN
    ):
        found.append(Finding("power_factor_low", ("power_factor",), "warning", {"min": POWER_FACTOR_MIN}))
    current = _num(reading, "current_a")
    if current is not None and current > meter.rated_current_a:
        severe = current > 1.25 * meter.rated_current_a
        found.append(
            Finding(
                "over_current", ("current_a",), "critical" if severe else "warning", {"rated_a": meter.rated_current_a}
            )
        )
    negative = [name for name in ("energy_import_kwh", "energy_export_kwh") if (_num(reading, name) or 0.0) < 0]
    if negative:
        found.append(Finding("negative_energy", tuple(negative), "critical", {"min_kwh": 0}))
    if previous is not None:
        found.extend(_register_rules(reading, previous, meter.register_capacity_kwh))
    return found


def _register_rules(
    reading: Mapping[str, Any], previous: Mapping[str, Any], capacity_kwh: float | None = None
) -> list[Finding]:
    found: list[Finding] = []
    backwards = []
    for name, energy in (("register_import_kwh", "energy_import_kwh"), ("register_export_kwh", "energy_export_kwh")):
        now, before = _num(reading, name), _num(previous, name)
        # A wrap past the register's capacity by the interval's energy is a rollover, not a fault.
        if (
            now is not None
            and before is not None
            and registers.register_delta(before, now, capacity=capacity_kwh, expected=_num(reading, energy)).backwards
        ):
            backwards.append(name)
    if backwards:
        baseline = {f"previous_{name}": previous.get(name) for name in backwards}
        found.append(Finding("register_backwards", tuple(backwards), "critical", baseline))
    for register, energy in (
        ("register_import_kwh", "energy_import_kwh"),
        ("register_export_kwh", "energy_export_kwh"),
    ):
        now, before, flowed = _num(reading, register), _num(previous, register), _num(reading, energy)
        if (
            now is not None
            and before is not None
            and flowed is not None
            and flowed >= STUCK_MIN_ENERGY_KWH
            and abs(now - before) <= REGISTER_EPSILON_KWH
        ):
            found.append(Finding("register_stuck", (register,), "warning", {f"previous_{register}": before}))
    return found
