"""VEE estimation: a value for every interval a meter failed to report, stored apart and flagged.

Short gaps (up to 2 hours) are interpolated linearly between the measured intervals on either side.
Longer gaps, and gaps without a measured neighbour, follow the meter's own profile: its mean for
the local hour of that kind of day (working day, Saturday, Sunday) over the 4 weeks before, scaled
to the level the meter actually drew over the 3 days before the gap (and what followed it by the time the
nightly VEE runs, 02:30), and bent to meet the measured
intervals at the gap's edges (the edge's difference from the profile fades within about an hour).
Gaps up to 4 hours take the mean of that and the straight line. When the readings on both sides of
a gap carry registers, the register rise says exactly how much energy the gap hid: the shape
(interpolated or profiled) is scaled to it, or spread evenly when there is no shape to scale.

Why, from the real UCI house (bench/realdata.py, MAE per 15-minute interval): the plain
weekday-and-hour mean of 4 weeks (4 days per cell) lost to linear interpolation on 2-4 hour gaps
(0.138 against 0.123 kWh); pooling working days, the level and the anchoring brought it to 0.118,
and whole days from 0.144 to 0.132. With 5 % of intervals missing, the month's energy was off by
0.87 % on average and 5.8 % in the worst month (a holiday August); with the level taken from both
sides of the gap, 0.57 % and 2.4 %.

Estimates go to their own collection keyed by (meter, ts), so estimating again replaces them, and
a measured reading that arrives later wins over them in every read.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from billing.vee.validation import expected_times
from mdms.core.localtime import local_midnight, local_zone
from mdms.core.models import Meter
from mdms.core.timeseries import rollups as store

# Gaps up to this long are interpolated; longer ones follow the meter's profile.
SHORT_GAP = dt.timedelta(hours=2)
# Gaps up to this long take the mean of the profile and the straight line.
MEDIUM_GAP = dt.timedelta(hours=4)
# The weeks of history the day-type/hour profile is taken from.
PROFILE_DAYS = 28
# The profile is scaled to what the meter drew over this long on each side of the gap (within
# LEVEL_CLIP of 1: a week away from home must not make every later estimate zero). Both sides, since
# the VEE runs after the fact: a gap inside a holiday has low days around it, the first days back
# home high ones, and the profile of the 4 weeks before knows neither.
LEVEL_DAYS = 3
LEVEL_CLIP = 0.6
# How far past the day's end the estimates may look: the nightly VEE runs at 02:30 (mdms.schedule).
VEE_LOOKAHEAD = dt.timedelta(hours=2, minutes=30)
# The edges the profile is bent to: the mean difference over this long on each side, fading with
# this time constant into the gap.
EDGE = dt.timedelta(hours=1)
EDGE_FADE = dt.timedelta(hours=1)


def _gaps(missing: Sequence[dt.datetime], step: dt.timedelta) -> list[list[dt.datetime]]:
    """Consecutive missing interval ends grouped into gaps."""
    gaps: list[list[dt.datetime]] = []
    for ts in missing:
        if gaps and ts - gaps[-1][-1] == step:
            gaps[-1].append(ts)
        else:
            gaps.append([ts])
    return gaps


def _linear(gap: list[dt.datetime], before: dict[str, Any], after: dict[str, Any]) -> list[tuple[float, float]]:
    values = []
    for position in range(1, len(gap) + 1):
        share = position / (len(gap) + 1)
        values.append(
            tuple(
                (before.get(name) or 0.0) + ((after.get(name) or 0.0) - (before.get(name) or 0.0)) * share
                for name in ("import_kwh", "export_kwh")
            )
        )
    return values  # type: ignore[return-value]


ENERGY_DECIMALS = 6
_DIRECTIONS = (("energy_import_kwh", "register_import_kwh"), ("energy_export_kwh", "register_export_kwh"))


def register_fit(values: Sequence[float], target: float) -> list[float]:
    """Values of the same shape that sum to `target` exactly, rounded to ENERGY_DECIMALS.

    Scaled in proportion, or spread evenly when the shape has no energy at all; the rounding
    remainder goes to the largest value so the rounded values still sum to the rounded target.
    """
    if not values:
        return []
    total = math.fsum(values)
    # Share first (value / total), then times the target: exact even for tiny totals.
    scaled = [value / total * target for value in values] if total > 0 else [target / len(values)] * len(values)
    rounded = [round(value, ENERGY_DECIMALS) for value in scaled]
    remainder = round(round(target, ENERGY_DECIMALS) - math.fsum(rounded), ENERGY_DECIMALS)
    if remainder:
        largest = max(range(len(rounded)), key=lambda k: rounded[k])
        rounded[largest] = round(rounded[largest] + remainder, ENERGY_DECIMALS)
    return rounded


def _register_targets(
    gap: list[dt.datetime], step: dt.timedelta, raw: dict[dt.datetime, dict[str, Any]]
) -> tuple[float | None, float | None]:
    """(import, export) energy the gap must hold by the registers at its two ends, None where unknown.

    A register at an interval end counts everything up to it: the rise from the reading before the
    gap to the reading after it is the gap's energy plus the after-interval's own.
    """
    before, after = raw.get(gap[0] - step), raw.get(gap[-1] + step)
    targets: list[float | None] = []
    for energy, register in _DIRECTIONS:
        if before is None or after is None or before.get(register) is None or after.get(register) is None:
            targets.append(None)
            continue
        hidden = float(after[register]) - float(before[register]) - float(after.get(energy) or 0.0)
        # A register that ran backwards is a fault validation reports; the shape stands unscaled.
        targets.append(hidden if hidden >= 0 else None)
    return targets[0], targets[1]


def _first_copies(meter_pk: int, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, dict[str, Any]]:
    found: dict[dt.datetime, dict[str, Any]] = {}
    for copy in store.raw_copies(meter_pk, start, end):
        found.setdefault(copy["ts"], copy)  # first received, as every read dedupes
    return found


def _day_type(isoweekday: int) -> int:
    """1 for a working day, 6 for Saturday, 7 for Sunday: four weeks hold 20 working days per hour."""
    return 1 if isoweekday <= 5 else isoweekday


def _day_type_profile(
    profile: dict[tuple[int, int], tuple[float, float]],
) -> dict[tuple[int, int], tuple[float, float]]:
    """Weekday cells pooled into working days (each weekday has as many days in whole weeks)."""
    cells: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for (weekday, hour), values in profile.items():
        cells.setdefault((_day_type(weekday), hour), []).append(values)
    return {
        key: (math.fsum(i for i, _ in values) / len(values), math.fsum(e for _, e in values) / len(values))
        for key, values in cells.items()
    }


def _profile_estimates(
    gap: list[dt.datetime],
    step: dt.timedelta,
    effective: dict[dt.datetime, dict[str, Any]],
    profile: dict[tuple[int, int], tuple[float, float]],
) -> list[tuple[float, float]]:
    zone = local_zone()
    fallback = (
        math.fsum(i for i, _ in profile.values()) / len(profile),
        math.fsum(e for _, e in profile.values()) / len(profile),
    )

    def expected(ts: dt.datetime) -> tuple[float, float]:
        begin = (ts - step).astimezone(zone)
        return profile.get((_day_type(begin.isoweekday()), begin.hour), fallback)

    level = [1.0, 1.0]
    reach = int(dt.timedelta(days=LEVEL_DAYS) / step)
    window = [gap[0] - step * k for k in range(1, reach + 1)] + [gap[-1] + step * k for k in range(1, reach + 1)]
    measured = [ts for ts in window if ts in effective]
    if len(measured) * step >= dt.timedelta(days=1):
        for n, name in enumerate(("import_kwh", "export_kwh")):
            drawn = math.fsum(effective[ts].get(name) or 0.0 for ts in measured)
            usual = math.fsum(expected(ts)[n] for ts in measured)
            if usual > 0:
                level[n] = min(1 + LEVEL_CLIP, max(1 - LEVEL_CLIP, drawn / usual))

    def scaled(ts: dt.datetime) -> tuple[float, float]:
        usual = expected(ts)
        return usual[0] * level[0], usual[1] * level[1]

    edge = int(EDGE / step)
    sides = (
        [gap[0] - step * k for k in range(1, edge + 1)],
        [gap[-1] + step * k for k in range(1, edge + 1)],
    )
    offsets: list[tuple[float, ...]] = []
    for side in sides:
        known = [ts for ts in side if ts in effective]
        offsets.append(
            tuple(
                math.fsum((effective[ts].get(name) or 0.0) - scaled(ts)[n] for ts in known) / len(known)
                if known
                else 0.0
                for n, name in enumerate(("import_kwh", "export_kwh"))
            )
        )
    fade = EDGE_FADE / step
    values = []
    for position, ts in enumerate(gap, start=1):
        from_before, from_after = math.exp(-position / fade), math.exp(-(len(gap) + 1 - position) / fade)
        shaped = scaled(ts)
        values.append(
            (
                max(0.0, shaped[0] + from_before * offsets[0][0] + from_after * offsets[1][0]),
                max(0.0, shaped[1] + from_before * offsets[0][1] + from_after * offsets[1][1]),
            )
        )
    return values


def estimate_day(meter: Meter, day: dt.date, *, now: dt.datetime) -> int:
    """Estimate the missing intervals of one meter's local day; returns how many are estimated now."""
    step = dt.timedelta(seconds=meter.interval_s)
    start, end = local_midnight(day), local_midnight(day + dt.timedelta(days=1))
    # The days before (the profile's level, the gaps' edges) come along, and after the day only what
    # the nightly VEE has when it runs (VEE_LOOKAHEAD): estimating later, with more data at hand (an
    # import, a re-run), must give the same estimates as live.
    effective = {
        row["ts"]: row
        for row in store.effective_intervals(meter.pk, start - dt.timedelta(days=LEVEL_DAYS), end + VEE_LOOKAHEAD)
        if row["source"] != store.SOURCE_ESTIMATE
    }
    expected = expected_times(start, end, meter.interval_s, now)
    # Estimates a measured reading has since replaced are dropped, so the collection says what is estimated.
    store.delete_estimates(meter.pk, [ts for ts in expected if ts in effective])
    missing = [ts for ts in expected if ts not in effective]
    if not missing:
        return 0
    profile: dict[tuple[int, int], tuple[float, float]] | None = None
    documents = []
    # The registers of the readings just outside the day's gaps (one read, only when there are gaps).
    raw = _first_copies(meter.pk, start - step, end + step)
    for gap in _gaps(missing, step):
        before, after = effective.get(gap[0] - step), effective.get(gap[-1] + step)
        targets = _register_targets(gap, step, raw)
        values: list[tuple[float, float]]
        if len(gap) * step <= SHORT_GAP and before is not None and after is not None:
            method, values = "linear", _linear(gap, before, after)
        else:
            if profile is None:
                profile = _day_type_profile(
                    store.hourly_profile(meter.pk, start - dt.timedelta(days=PROFILE_DAYS), start)
                )
            if profile:
                method = "profile"
                values = _profile_estimates(gap, step, effective, profile)
                if len(gap) * step <= MEDIUM_GAP and before is not None and after is not None:
                    values = [
                        ((p_i + l_i) / 2, (p_e + l_e) / 2)
                        for (p_i, p_e), (l_i, l_e) in zip(values, _linear(gap, before, after), strict=True)
                    ]
            elif targets[0] is not None:
                method, values = "register", [(0.0, 0.0)] * len(gap)  # spread evenly below
            else:
                continue  # nothing to estimate from: the gap stays missing, and in the exception queue
        if targets[0] is not None or targets[1] is not None:
            imports, exports = [v[0] for v in values], [v[1] for v in values]
            if targets[0] is not None:
                imports = register_fit(imports, targets[0])
            if targets[1] is not None:
                exports = register_fit(exports, targets[1])
            values = list(zip(imports, exports, strict=True))
            method = f"{method}+register" if method != "register" else method
        for ts, (import_kwh, export_kwh) in zip(gap, values, strict=True):
            documents.append(
                {
                    "meter": meter.pk,
                    "ts": ts,
                    "energy_import_kwh": round(import_kwh, ENERGY_DECIMALS),
                    "energy_export_kwh": round(export_kwh, ENERGY_DECIMALS),
                    "interval_s": meter.interval_s,
                    "method": method,
                }
            )
    store.upsert_estimates(documents)
    return len(documents)
