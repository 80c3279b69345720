"""Reads of the forecast: the newest run, a series of a run, the open capacity warnings."""

from __future__ import annotations

import datetime as dt

from django.db.models import F, QuerySet

from forecast.models import CapacityWarning, ForecastRun, ForecastSeries


def latest_run() -> ForecastRun | None:
    return ForecastRun.objects.order_by("-origin").first()


def run_at_or_before(moment: dt.datetime) -> ForecastRun | None:
    """The newest run whose origin is not after `moment` (what we forecast then)."""
    return ForecastRun.objects.filter(origin__lte=moment).order_by("-origin").first()


def series_of(run: ForecastRun, *, region_pk: int, feeder_pk: int | None) -> ForecastSeries | None:
    rows = ForecastSeries.objects.filter(run=run, region_id=region_pk)
    rows = rows.filter(feeder_id=feeder_pk) if feeder_pk is not None else rows.filter(feeder__isnull=True)
    return rows.first()


def run_series(run: ForecastRun) -> QuerySet[ForecastSeries]:
    """A run's series, each region before its feeders."""
    return (
        ForecastSeries.objects.filter(run=run)
        .select_related("region", "feeder")
        .order_by("region__code", F("feeder__code").asc(nulls_first=True))
    )


def open_capacity_warnings() -> QuerySet[CapacityWarning]:
    """Open warnings, the nearest to (or furthest past) its rating first."""
    return (
        CapacityWarning.objects.filter(closed_at__isnull=True)
        .select_related("feeder__region", "acknowledged_by")
        .order_by("-peak_kw")
    )


def recent_capacity_warnings(limit: int = 20) -> QuerySet[CapacityWarning]:
    return CapacityWarning.objects.select_related("feeder__region", "acknowledged_by").order_by("-opened_at")[:limit]
