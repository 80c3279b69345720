"""Faults the simulator injects, each with a label so that detection can be scored against it.

A fault plan gives rates (expected faults of each kind per meter per day) and/or explicit faults.
Planning is seeded per meter and per UTC day, like the load model, so the same seed and plan
give the same faults whatever the run's start. Faults of one meter never overlap, so that every
label describes exactly what the data shows.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml


class FaultKind(StrEnum):
    # What the grid or the installation does (changes the measurements themselves).
    VOLTAGE_SAG = "voltage_sag"
    VOLTAGE_SWELL = "voltage_swell"
    FREQUENCY_EXCURSION = "frequency_excursion"
    OVER_CURRENT = "over_current"
    OUTAGE = "outage"
    # What the meter or its transport does (changes what is sent, not what was consumed).
    STUCK_REGISTER = "stuck_register"
    REGISTER_BACKWARDS = "register_backwards"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    CLOCK_DRIFT = "clock_drift"
    # What happens to the meter in its life (issue 16). A rollover is true: the register wraps at its
    # capacity, and the consumption across it is what was drawn (the rate is the share of meters
    # installed with a register near its capacity, not a rate per day). An exchange is done through the
    # MDMS's own service by the simulator (simulate_meters), and the new meter carries on.
    REGISTER_ROLLOVER = "register_rollover"
    METER_EXCHANGE = "meter_exchange"


# Not planned per day as an interval fault: decided once per meter (FaultPlan.rollover_margin_kwh).
PER_METER = frozenset({FaultKind.REGISTER_ROLLOVER})
# How far below its capacity a rollover meter's register starts, in kWh: a few days of a household's use.
ROLLOVER_MARGIN_KWH = (5.0, 60.0)
# A uniform plan (--faults RATE) gives the life events rates of their own: an exchange is rare (RATE/20
# a meter a day: 0.02 gives about one meter in 5 exchanged over the demo's 190 days), while a register
# near its capacity is a property of the meter (RATE x 5 of meters: 0.02 gives one in 10).
UNIFORM_EXCHANGE_SHARE = 1 / 20
UNIFORM_ROLLOVER_FACTOR = 5.0


# How many intervals a fault lasts, at least and at most (the outage adds seconds inside one).
DURATION_INTERVALS: dict[FaultKind, tuple[int, int]] = {
    FaultKind.VOLTAGE_SAG: (1, 2),
    FaultKind.VOLTAGE_SWELL: (1, 2),
    FaultKind.FREQUENCY_EXCURSION: (1, 1),
    FaultKind.OVER_CURRENT: (1, 4),
    FaultKind.OUTAGE: (1, 12),
    FaultKind.STUCK_REGISTER: (4, 24),
    FaultKind.REGISTER_BACKWARDS: (1, 1),
    FaultKind.DUPLICATE: (1, 1),
    FaultKind.OUT_OF_ORDER: (1, 1),
    FaultKind.CLOCK_DRIFT: (24, 96),
    FaultKind.REGISTER_ROLLOVER: (1, 1),
    FaultKind.METER_EXCHANGE: (1, 1),  # the exchange is at its start, an interval boundary
}


@dataclass(frozen=True, eq=False)  # compared by identity: each is planned once per meter
class Fault:
    """One injected fault. It covers the intervals whose end lies in (start, end]."""

    serial: str
    kind: FaultKind
    start: dt.datetime
    end: dt.datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    def covers(self, interval_end: dt.datetime) -> bool:
        return self.start < interval_end <= self.end

    def overlaps(self, other: Fault) -> bool:
        return self.start < other.end and other.start < self.end

    def label(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "kind": self.kind.value,
            "start": iso(self.start),
            "end": iso(self.end),
            "details": dict(self.details),
        }


@functools.lru_cache(maxsize=4096)  # a fleet's meters name the same interval ends one after another
def iso(when: dt.datetime) -> str:
    """UTC ISO 8601 with a Z, to the second (the canonical reading's ts)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _details(kind: FaultKind, rng: random.Random) -> dict[str, Any]:
    if kind is FaultKind.VOLTAGE_SAG:
        return {"voltage_factor": round(rng.uniform(0.70, 0.88), 3)}
    if kind is FaultKind.VOLTAGE_SWELL:
        return {"voltage_factor": round(rng.uniform(1.11, 1.16), 3)}
    if kind is FaultKind.FREQUENCY_EXCURSION:
        return {"frequency_offset_hz": round(rng.choice([-1, 1]) * rng.uniform(0.3, 0.9), 3)}
    if kind is FaultKind.OVER_CURRENT:
        return {"current_factor": round(rng.uniform(1.1, 1.4), 3)}
    if kind is FaultKind.REGISTER_BACKWARDS:
        return {"drop_kwh": round(rng.uniform(5.0, 80.0), 3)}
    if kind is FaultKind.OUT_OF_ORDER:
        return {"delay_intervals": rng.randint(2, 6)}
    if kind is FaultKind.CLOCK_DRIFT:
        return {"drift_s_per_hour": round(rng.choice([-1, 1]) * rng.uniform(20.0, 90.0), 1)}
    return {}


@dataclass(frozen=True)
class FaultPlan:
    rates: Mapping[FaultKind, float] = field(default_factory=dict)  # faults per meter per day
    explicit: tuple[Fault, ...] = ()  # serial "*" means every meter

    @classmethod
    def uniform(cls, rate: float) -> FaultPlan:
        rates = dict.fromkeys(FaultKind, rate)
        rates[FaultKind.METER_EXCHANGE] = rate * UNIFORM_EXCHANGE_SHARE
        rates[FaultKind.REGISTER_ROLLOVER] = min(1.0, rate * UNIFORM_ROLLOVER_FACTOR)
        return cls(rates=rates)

    def rollover_margin_kwh(self, serial: str, *, seed: int) -> float | None:
        """How far below its capacity this meter's register starts (it wraps once that much is drawn);
        None for a meter without a rollover. An explicit fault may give `margin_kwh` in its details."""
        for fault in self.explicit:
            if fault.kind is FaultKind.REGISTER_ROLLOVER and fault.serial in ("*", serial):
                return float(fault.details.get("margin_kwh", sum(ROLLOVER_MARGIN_KWH) / 2))
        share = self.rates.get(FaultKind.REGISTER_ROLLOVER, 0.0)
        rng = random.Random(f"rollover:{seed}:{serial}")
        if share <= 0 or rng.random() >= share:
            return None
        return round(rng.uniform(*ROLLOVER_MARGIN_KWH), 1)

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """A number (the same rate for every kind) or the path of a YAML/JSON plan file:

        rates: {voltage_sag: 0.05, outage: 0.01}
        faults:
          - {serial: MTR000001, kind: outage, start: "2026-01-10T18:00:00Z", end: "2026-01-10T19:20:00Z"}
        """
        try:
            return cls.uniform(float(text))
        except ValueError:
            pass
        data = yaml.safe_load(Path(text).read_text()) or {}
        rates = {FaultKind(kind): float(rate) for kind, rate in (data.get("rates") or {}).items()}
        explicit = tuple(
            Fault(
                serial=str(item.get("serial", "*")),
                kind=FaultKind(item["kind"]),
                start=_parse_time(item["start"]),
                end=_parse_time(item["end"]),
                details=item.get("details") or {},
            )
            for item in data.get("faults") or []
        )
        return cls(rates=rates, explicit=explicit)

    def for_day(self, serial: str, day: dt.date, *, seed: int, interval_s: int) -> list[Fault]:
        """The faults of one meter starting on one UTC day, explicit ones first."""
        day_start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        day_end = day_start + dt.timedelta(days=1)
        planned: list[Fault] = []
        for fault in self.explicit:
            if fault.kind in PER_METER:
                continue
            if fault.serial in ("*", serial) and day_start <= fault.start < day_end:
                planned.append(
                    Fault(serial, fault.kind, fault.start, fault.end, {**_defaults(fault.kind), **fault.details})
                )
        rng = random.Random(f"faults:{seed}:{serial}:{day.isoformat()}")
        intervals_per_day = 86400 // interval_s
        # Outages first, so that the data quality faults never hide inside one.
        for kind in sorted(self.rates, key=lambda k: k is not FaultKind.OUTAGE):
            if kind in PER_METER:
                continue
            rate = self.rates[kind]
            whole, fraction = divmod(rate, 1.0)
            for _ in range(int(whole) + (1 if rng.random() < fraction else 0)):
                shortest, longest = DURATION_INTERVALS[kind]
                first = rng.randrange(intervals_per_day)
                start = day_start + dt.timedelta(seconds=first * interval_s)
                end = start + dt.timedelta(seconds=rng.randint(shortest, longest) * interval_s)
                if kind is FaultKind.OUTAGE:
                    start += dt.timedelta(seconds=rng.randrange(1, interval_s))
                    end += dt.timedelta(seconds=rng.randrange(1, interval_s))
                candidate = Fault(serial, kind, start, end, _details(kind, rng))
                if not any(candidate.overlaps(other) for other in planned):
                    planned.append(candidate)
        return sorted(planned, key=lambda fault: fault.start)


def _defaults(kind: FaultKind) -> dict[str, Any]:
    """Details of an explicit fault that does not give them: the middle of the random range."""
    return _details(kind, random.Random(kind.value))


def _parse_time(value: Any) -> dt.datetime:
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"fault time {value!r} needs a time zone (Z or an offset)")
    return when.astimezone(dt.UTC)


class LabelWriter:
    """Appends one JSON line per injected fault; flushed per line so a killed run keeps its labels."""

    def __init__(self, path: Path | None) -> None:
        self._file = path.open("a", encoding="utf-8") if path else None

    def write(self, faults: Iterable[Fault]) -> None:
        if self._file is None:
            return
        for fault in faults:
            self._file.write(json.dumps(fault.label()) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
