"""Tiering: raw readings and events older than LAKE_RAW_RETENTION_DAYS leave MongoDB, once safe.

A day goes only when it was exported and passes a verification made right before the deletion
(rows, meters, energy sums and time bounds equal in the file, its manifest and MongoDB). A day
that fails keeps its raw rows and shows the problem on its LakeDay (the operator's ingest page).
Rollups, estimates, edits and anomalies stay: dashboards and bills read rollups, and anything
that would recompute a tiered day brings its raw rows back from the lake first (restore.py).

Consecutive days that pass are removed as one range, which rewrites fewer MongoDB buckets than
day by day (mdms.core.timeseries.archive.delete_range). Running twice changes nothing the second
time: tiered days are not looked at again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from lake.models import LakeDay
from lake.verify import lake_day_verify
from mdms.core.localtime import day_bounds, local_day, local_today
from mdms.core.timeseries import archive

log = logging.getLogger(__name__)

# A day read back from the lake stays in MongoDB this long (the backfill that asked for it is
# done by then) before tiering removes it again.
RESTORED_KEEP_DAYS = 7


@dataclass
class TierResult:
    tiered: list[tuple[str, dt.date]] = field(default_factory=list)
    refused: list[tuple[str, dt.date, str]] = field(default_factory=list)
    rows_removed: int = 0


def retention_cutoff(now: dt.datetime | None = None) -> dt.date | None:
    """Days before this local day may be tiered; None when tiering is off (LAKE_RAW_RETENTION_DAYS=0)."""
    days = int(settings.LAKE_RAW_RETENTION_DAYS)
    if days <= 0:
        return None
    return local_today(now) - dt.timedelta(days=days)


def tier_candidates(kind: str, cutoff: dt.date, now: dt.datetime) -> list[LakeDay]:
    restored_long_ago = Q(status=LakeDay.Status.RESTORED, restored_at__lt=now - dt.timedelta(days=RESTORED_KEEP_DAYS))
    waiting = Q(status__in=[LakeDay.Status.EXPORTED, LakeDay.Status.VERIFIED])
    return list(LakeDay.objects.filter(waiting | restored_long_ago, kind=kind, day__lt=cutoff).order_by("day"))


def _day_of(kind: str) -> Callable[[dt.datetime], dt.date]:
    if kind == "readings":
        # An interval named by its end belongs to the day containing its start (ts at midnight: the day before).
        return lambda ts: local_day(ts - dt.timedelta(milliseconds=1))
    return local_day


def lake_tier(
    *, now: dt.datetime | None = None, progress: Callable[[int], object] | None = None, cutoff: dt.date | None = None
) -> TierResult:
    """Remove from MongoDB the raw rows of every verified day older than the retention."""
    now = now or timezone.now()
    cutoff = cutoff or retention_cutoff(now)
    result = TierResult()
    if cutoff is None:
        return result
    archive.replay_staged()
    for kind in archive.KINDS:
        passed: list[LakeDay] = []
        for row in tier_candidates(kind, cutoff, now):
            check = lake_day_verify(kind=kind, day=row.day)  # type: ignore[arg-type]
            if check.ok:
                passed.append(row)
            else:
                result.refused.append((kind, row.day, "; ".join(check.problems)))
                log.warning("lake: %s of %s not tiered: %s", kind, row.day, "; ".join(check.problems))
            if progress is not None:
                progress(1)
        for run in _consecutive(passed):
            start, _ = day_bounds(run[0].day)
            _, end = day_bounds(run[-1].day)
            removed = archive.delete_range(kind, start, end, day_of=_day_of(kind))  # type: ignore[arg-type]
            stamp = timezone.now()
            for row in run:
                LakeDay.objects.filter(pk=row.pk).update(
                    status=LakeDay.Status.TIERED, tiered_at=stamp, tiered_rows=removed.get(row.day, 0)
                )
                result.tiered.append((kind, row.day))
            result.rows_removed += sum(removed.values())
    return result


def _consecutive(rows: list[LakeDay]) -> list[list[LakeDay]]:
    runs: list[list[LakeDay]] = []
    for row in rows:
        if runs and runs[-1][-1].day + dt.timedelta(days=1) == row.day:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs
