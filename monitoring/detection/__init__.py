"""Anomaly detection, pure functions over readings: engineering rules and statistical baselines.

No database here: `monitoring.services` loads readings and baselines and stores what these
functions find, and the benchmark scores them on the simulator's labelled faults.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mdms.core.reading_fields import DEFAULT_INTERVAL_S


@dataclass(frozen=True)
class MeterSpec:
    """What detection needs to know of a meter, from the registry."""

    pk: int
    nominal_voltage_v: float = 230.0
    nominal_frequency_hz: float = 50.0
    rated_current_a: float = 60.0
    interval_s: int = DEFAULT_INTERVAL_S
    feeder_pk: int | None = None
    region_pk: int | None = None
    # Where the register wraps (mdms.core.registers); None: a register that never wraps.
    register_capacity_kwh: float | None = None


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one reading: the fields it flags and how bad."""

    rule: str
    fields: tuple[str, ...]
    severity: str  # "info", "warning" or "critical"
    baseline: dict[str, object]


SEVERITIES = ("info", "warning", "critical")
# What operators are alerted on; "info" is advisory (unusual consumption).
ALERTING = ("warning", "critical")


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _continuing(anomaly: Mapping[str, Any]) -> str:
    """ ", still so since ..." for a finding that continues an episode (monitoring.detection.episodes)."""
    start, ts = anomaly.get("episode_start"), anomaly.get("timestamp")
    if not isinstance(start, dt.datetime) or not isinstance(ts, dt.datetime) or start >= ts:
        return ""
    minutes = round((ts - start).total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    took = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return f"; continues the warning raised {took} earlier"


def describe(anomaly: Mapping[str, Any]) -> str:
    """What a stored anomaly is, in an operator's words: a voltage beyond the standard band is
    said to be one (it is a fact about the supply, EN 50160 or ANSI C84.1), a statistical flag is
    said to be unusual for the meter (an opinion of the baseline), so that the two never read alike."""
    rule = str(anomaly.get("rule", ""))
    data: Mapping[str, Any] = anomaly.get("data") or {}
    baseline: Mapping[str, Any] = anomaly.get("baseline") or {}
    voltage = _number(data.get("voltage_v"))
    if rule in ("voltage_sag", "voltage_swell"):
        low, high = _number(baseline.get("low_v")), _number(baseline.get("high_v"))
        standard = "ANSI C84.1 range A" if high is not None and high < 200 else "EN 50160"
        where = "below" if rule == "voltage_sag" else "above"
        reading = f"{voltage:.1f} V" if voltage is not None else "Voltage"
        band = f" ({low:.0f}-{high:.0f} V)" if low is not None and high is not None else ""
        return f"{reading} {where} the {standard} band{band}: a supply voltage violation"
    if rule == "statistical":
        fields = list(anomaly.get("anomalies") or [])
        if "voltage_v" in fields and voltage is not None:
            usual = baseline.get("voltage_v") or {}
            expected = _number(usual.get("expected", usual.get("median")))
            usual_text = f" (usual {expected:.1f} V)" if expected is not None else ""
            text = f"{voltage:.1f} V, within the standard band, unusual for this meter at this hour{usual_text}"
        else:
            text = f"Unusual {', '.join(fields)} for this meter at this hour"
        return text + _continuing(anomaly)
    if rule == "statistical_load":
        return "Unusual consumption for this meter at this hour (advisory)"
    if rule == "power_factor_low":
        factor, power = _number(data.get("power_factor")), _number(data.get("power_w"))
        if factor is not None and power is not None:
            return f"Power factor {factor:.2f} at {power / 1000:.1f} kW, below {baseline.get('min', 0.8)}"
    return rule.replace("_", " ").capitalize()
