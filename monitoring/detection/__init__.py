"""Anomaly detection, pure functions over readings: engineering rules and statistical baselines.

No database here: `monitoring.services` loads readings and baselines and stores what these
functions find, and the benchmark scores them on the simulator's labelled faults.
"""

from __future__ import annotations

from dataclasses import dataclass

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
