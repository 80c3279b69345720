"""Reprocess a range of history: what the live pipeline does day by day, done for days loaded later.

For meters and local days [first_day, end_day), in the order the live system would have done it:
the daily rollups, then VEE day by day (estimates, exceptions; estimation reads the days before),
then anomaly detection day by day, each day judged against the baselines of the four weeks before
it (never against a time when the meter had no data yet), and each meter's current baseline
rebuilt so that live detection from now on includes the imported history; then, when asked, the
outages (a bulk load with events: monitoring.outages.outages_replay). Idempotent: estimates are
replaced, exceptions refreshed, anomalies stored once, an outage joins its incident once.

`stages` (mdms.core.reprocessing.STAGES) picks which of these run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from billing.rollups import rollups_rebuild
from billing.vee.services import vee_run
from mdms.core.localtime import local_midnight
from mdms.core.reprocessing import BASELINES, DEFAULT_STAGES, DETECTION, OUTAGES, ROLLUPS, VEE, Progress
from monitoring import outages
from monitoring import services as monitoring

# Meters judged per detection call: one call loads their readings of one UTC day.
DETECT_CHUNK = 200


@dataclass(frozen=True)
class ReprocessResult:
    meter_days: int
    estimated_intervals: int
    exceptions: int
    readings_judged: int
    anomalies_stored: int


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def reprocess_range(
    *,
    meter_pks: Sequence[int],
    first_day: dt.date,
    end_day: dt.date,
    progress: Progress | None = None,
    stages: Collection[str] = DEFAULT_STAGES,
) -> ReprocessResult:
    pks = sorted(set(meter_pks))
    days = (end_day - first_day).days
    if not pks or days <= 0:
        return ReprocessResult(0, 0, 0, 0, 0)
    rolled = 0

    def rolled_up(span: int) -> None:
        nonlocal rolled
        rolled += span
        _tick(progress, ROLLUPS, rolled, days)

    if ROLLUPS in stages:
        rollups_rebuild(first_day=first_day, end_day=end_day, meter_pks=pks, progress=rolled_up)
    estimated = exceptions = judged = stored = 0
    if VEE in stages:
        estimated, exceptions = _vee_days(pks, first_day, end_day, progress)
    if DETECTION in stages:
        judged, stored = _detect_days(pks, first_day, end_day, progress)
    if BASELINES in stages:
        monitoring.baselines_rebuild(meter_pks=pks, through=monitoring.current_baseline_day())
        _tick(progress, BASELINES, 1, 1)
    if OUTAGES in stages:
        outages.outages_replay(meter_pks=pks, start=local_midnight(first_day), end=local_midnight(end_day))
        _tick(progress, OUTAGES, 1, 1)
    return ReprocessResult(len(pks) * days, estimated, exceptions, judged, stored)


def _vee_days(pks: list[int], first_day: dt.date, end_day: dt.date, progress: Progress | None) -> tuple[int, int]:
    """VEE of all meters one day at a time (day d's estimates may use day d-1's: the profile reads back);
    (intervals estimated, exceptions)."""
    days = (end_day - first_day).days
    estimated = exceptions = 0
    day = first_day
    while day < end_day:
        result = vee_run(meter_pks=pks, first_day=day, end_day=day + dt.timedelta(days=1))
        estimated += result.estimated_intervals
        exceptions += result.exceptions
        day += dt.timedelta(days=1)
        _tick(progress, VEE, (day - first_day).days, days)
    return estimated, exceptions


def _detect_days(pks: list[int], first_day: dt.date, end_day: dt.date, progress: Progress | None) -> tuple[int, int]:
    """Anomaly detection over the UTC days covering the local days (detection's baselines are per UTC
    day), DETECT_CHUNK meters a call; (readings judged, anomalies stored)."""
    judged = stored = 0
    start = local_midnight(first_day).astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = local_midnight(end_day).astimezone(dt.UTC)
    utc_days = int((end - start).total_seconds() // 86400) + 1
    for n in range(utc_days):
        lower = start + dt.timedelta(days=n)
        upper = min(end, lower + dt.timedelta(days=1))
        for offset in range(0, len(pks), DETECT_CHUNK):
            chunk = tuple(pks[offset : offset + DETECT_CHUNK])
            # Interval ends in (lower, upper]: readings_in takes first and last ts inclusive.
            found = monitoring.anomalies_detect(ranges=[(chunk, lower + dt.timedelta(microseconds=1), upper)])
            judged += found.scanned
            stored += found.stored
        _tick(progress, DETECTION, n + 1, utc_days)
    return judged, stored
