"""VEE estimation: a value for every interval a meter failed to report, stored apart and flagged.

Short gaps are interpolated linearly between the measured intervals on either side; long gaps
(and gaps without a measured neighbour) take the meter's own mean for that weekday and local hour
over the weeks before. Estimates go to their own collection keyed by (meter, ts), so estimating
again replaces them, and a measured reading that arrives later wins over them in every read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from billing.vee.validation import expected_times
from mdms.core.localtime import local_midnight, local_zone
from mdms.core.models import Meter
from mdms.core.timeseries import rollups as store

# Gaps up to this long are interpolated; longer ones follow the meter's profile.
SHORT_GAP = dt.timedelta(hours=2)
# The weeks of history the weekday/hour profile is taken from.
PROFILE_DAYS = 28


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


def estimate_day(meter: Meter, day: dt.date, *, now: dt.datetime) -> int:
    """Estimate the missing intervals of one meter's local day; returns how many are estimated now."""
    step = dt.timedelta(seconds=meter.interval_s)
    start, end = local_midnight(day), local_midnight(day + dt.timedelta(days=1))
    # One interval either side: the neighbours a gap at the day's edge is interpolated from.
    effective = {
        row["ts"]: row
        for row in store.effective_intervals(meter.pk, start - step, end + step)
        if row["source"] != store.SOURCE_ESTIMATE
    }
    expected = expected_times(start, end, meter.interval_s, now)
    # Estimates a measured reading has since replaced are dropped, so the collection says what is estimated.
    store.delete_estimates(meter.pk, [ts for ts in expected if ts in effective])
    missing = [ts for ts in expected if ts not in effective]
    if not missing:
        return 0
    profile: dict[tuple[int, int], tuple[float, float]] | None = None
    zone = local_zone()
    documents = []
    for gap in _gaps(missing, step):
        before, after = effective.get(gap[0] - step), effective.get(gap[-1] + step)
        if len(gap) * step <= SHORT_GAP and before is not None and after is not None:
            method, values = "linear", _linear(gap, before, after)
        else:
            if profile is None:
                profile = store.hourly_profile(meter.pk, start - dt.timedelta(days=PROFILE_DAYS), start)
            if not profile:
                continue  # nothing to estimate from: the gap stays missing, and in the exception queue
            fallback = (
                sum(i for i, _ in profile.values()) / len(profile),
                sum(e for _, e in profile.values()) / len(profile),
            )
            method = "profile"
            values = []
            for ts in gap:
                begin = (ts - step).astimezone(zone)
                values.append(profile.get((begin.isoweekday(), begin.hour), fallback))
        for ts, (import_kwh, export_kwh) in zip(gap, values, strict=True):
            documents.append(
                {
                    "meter": meter.pk,
                    "ts": ts,
                    "energy_import_kwh": round(import_kwh, 6),
                    "energy_export_kwh": round(export_kwh, 6),
                    "interval_s": meter.interval_s,
                    "method": method,
                }
            )
    store.upsert_estimates(documents)
    return len(documents)
