"""Consumption from register readings: the one place that knows a register wraps.

A register with d digits, k of them decimals, shows values in [0, 10**(d-k)): 99999.9 kWh for 6 and
1, then 0.0. A step from near the top to near zero is a rollover when the energy it implies is what
the meter could have measured in between (the interval energy, when it is known); any other step
down is a true backwards step (a fault or tampering) and gives no consumption. Pure: no database,
no clock. VEE validation, the monitoring rules and on-demand read estimates call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Without the interval energy to compare with, a wrap may not imply more than this share of the
# register's capacity (1%: 1,000 kWh on a 6+1 register, days of a large house's use), so that a
# drop from 70,000 to 3 is a fault, never a rollover.
WRAP_WINDOW_SHARE = 0.01
# With the interval energy known, the energy a wrap implies must agree with it within this much
# (registers are shown rounded to their last digit: the tolerance absorbs two roundings).
EXPECTED_TOLERANCE_KWH = 0.01
EXPECTED_TOLERANCE_SHARE = 0.02
# Rounding below the watt-hour is not a step backwards.
EPSILON_KWH = 0.0005


def capacity_kwh(*, digits: int, decimals: int) -> float:
    """The register's first unshowable value (where it reads zero again)."""
    return float(10 ** (digits - decimals))


@dataclass(frozen=True)
class RegisterStep:
    """What a step from one register reading to the next means."""

    kwh: float | None  # the consumption between them; None for a true backwards step
    rolled_over: bool = False

    @property
    def backwards(self) -> bool:
        return self.kwh is None


def _agrees(kwh: float, expected: float) -> bool:
    return abs(kwh - expected) <= max(EXPECTED_TOLERANCE_KWH, EXPECTED_TOLERANCE_SHARE * expected)


def register_delta(
    previous: float, current: float, *, capacity: float | None, expected: float | None = None
) -> RegisterStep:
    """The consumption from `previous` to `current` on a register that wraps at `capacity`.

    capacity None: a register that never wraps (every drop is backwards). expected: the interval
    energy measured between the two readings, when known; a wrap must agree with it.
    """
    if current >= previous - EPSILON_KWH:
        return RegisterStep(max(0.0, current - previous))
    if capacity is None or previous >= capacity or current < 0:
        return RegisterStep(None)
    wrapped = capacity - previous + current
    if expected is not None:
        return RegisterStep(wrapped, rolled_over=True) if _agrees(wrapped, expected) else RegisterStep(None)
    if wrapped <= capacity * WRAP_WINDOW_SHARE:
        return RegisterStep(wrapped, rolled_over=True)
    return RegisterStep(None)


def advance(register: float, kwh: float, *, capacity: float | None) -> float:
    """The register after kwh more is counted (an estimate carried forward wraps like the meter)."""
    value = register + kwh
    return value % capacity if capacity is not None else value


@dataclass(frozen=True)
class RegisterSeries:
    """One meter's register readings in time order while it served, and its capacity.

    An exchanged meter's series ends with its final register (MeterExchange.old_final_register_kwh);
    the new meter's starts with its initial one, so that nothing is derived across the two meters.
    """

    registers: Sequence[float]
    capacity: float | None
    expected: Sequence[float | None] | None = None  # the interval energy of each step, if known


def consumption(series: Sequence[RegisterSeries]) -> tuple[float, int]:
    """(kWh over every meter's series, the number of backwards steps left out).

    A backwards step counts nothing (the validation flags it); the rest, rollovers included, is the
    sum of the true interval energies.
    """
    total = 0.0
    backwards = 0
    for one in series:
        for i in range(1, len(one.registers)):
            expected = one.expected[i - 1] if one.expected is not None else None
            step = register_delta(one.registers[i - 1], one.registers[i], capacity=one.capacity, expected=expected)
            if step.kwh is None:
                backwards += 1
            else:
                total += step.kwh
    return total, backwards
