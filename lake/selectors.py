"""Reads of the lake's state, for the operator's ingest page."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Max, Q

from lake.models import LakeDay

# The newest problems shown on the page; the count says how many there are in all.
ERRORS_SHOWN = 5


@dataclass(frozen=True)
class LakeStatus:
    url: str
    last_exported_day: dt.date | None
    exported_days: int  # readings days in the lake, whatever their state
    verified_days: int  # readings days verified at least once (tiered days included)
    tiered_days: int  # readings days whose raw rows are only in the lake
    restored_days: int
    errors: list[LakeDay]
    error_count: int


def lake_status() -> LakeStatus:
    """Figures over readings days (events follow the same days); problems of either kind."""
    figures = LakeDay.objects.filter(kind=LakeDay.Kind.READINGS).aggregate(
        last=Max("day"),
        exported=Count("pk"),
        verified=Count("pk", filter=Q(verified_at__isnull=False)),
        tiered=Count("pk", filter=Q(status=LakeDay.Status.TIERED)),
        restored=Count("pk", filter=Q(status=LakeDay.Status.RESTORED)),
    )
    failing = LakeDay.objects.exclude(error="").order_by("-error_at", "-day")
    return LakeStatus(
        url=str(settings.LAKE_URL),
        last_exported_day=figures["last"],
        exported_days=figures["exported"],
        verified_days=figures["verified"],
        tiered_days=figures["tiered"],
        restored_days=figures["restored"],
        errors=list(failing[:ERRORS_SHOWN]),
        error_count=failing.count(),
    )
