"""The lake's nightly work, in order: export every finished day not yet in the lake, then tier.

Catch-up: when the job was down for days, the next run exports every day it missed, from the
first day the lake knows (or, on the very first run, the first day MongoDB holds) to yesterday.
Running it twice, or two at once (a lock in Redis), changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Min

from lake.export import ExportResult, lake_day_export, meter_places
from lake.models import LakeDay
from lake.tiering import TierResult, lake_tier
from mdms.core.localtime import each_day, local_day, local_today
from mdms.core.timeseries import archive

LOCK_KEY = "lake:nightly"
# Longer than a catch-up of months should take; the lock is released at the end anyway.
LOCK_TIMEOUT_S = 6 * 3600


@dataclass
class NightlyResult:
    exported: list[ExportResult] = field(default_factory=list)
    tier: TierResult | None = None
    skipped: str = ""


def days_to_export(kind: archive.Kind, *, today: dt.date | None = None) -> list[dt.date]:
    """Finished local days (before today) of this kind that have no partition yet."""
    today = today or local_today()
    first: dt.date | None = LakeDay.objects.filter(kind=kind).aggregate(first=Min("day"))["first"]
    if first is None:
        oldest = archive.oldest_ts(kind)
        if oldest is None:
            return []
        first = local_day(oldest)
    done = set(LakeDay.objects.filter(kind=kind, day__gte=first, day__lt=today).values_list("day", flat=True))
    return [day for day in each_day(first, today) if day not in done]


def lake_export_pending(
    *, today: dt.date | None = None, progress: Callable[[int], object] | None = None
) -> list[ExportResult]:
    """Export every finished day of every kind not yet in the lake, oldest first."""
    places = meter_places()
    results = []
    for kind in archive.KINDS:
        for day in days_to_export(kind, today=today):
            results.append(lake_day_export(kind=kind, day=day, places=places))
            if progress is not None:
                progress(1)
    return results


def lake_nightly(*, now: dt.datetime | None = None) -> NightlyResult:
    """The beat job: catch-up export, then tiering. One run at a time."""
    if not cache.add(LOCK_KEY, "running", timeout=LOCK_TIMEOUT_S):
        return NightlyResult(skipped="another run holds the lock")
    try:
        exported = lake_export_pending(today=local_today(now))
        return NightlyResult(exported=exported, tier=lake_tier(now=now))
    finally:
        cache.delete(LOCK_KEY)
