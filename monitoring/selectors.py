"""Reads for dashboards and the API: who is out, incidents, silent meters, anomalies."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from mdms.core.models import Meter
from mdms.core.timeseries import anomalies as store
from monitoring.detection import ALERTING
from monitoring.models import IncidentMeter, OutageIncident

# "Active" anomalies are those of the last day.
ACTIVE_WINDOW = dt.timedelta(hours=24)


def meters_out_now() -> QuerySet[IncidentMeter]:
    """Who is out right now, with their premise, feeder and incident."""
    return (
        IncidentMeter.objects.filter(restored_at__isnull=True)
        .select_related("meter__premise__feeder__region", "incident")
        .order_by("out_since")
    )


def incidents(
    *,
    status: str | None = None,
    feeder_pk: int | None = None,
    region_pk: int | None = None,
    started_from: dt.datetime | None = None,
    started_before: dt.datetime | None = None,
) -> QuerySet[OutageIncident]:
    """Outage incidents, newest first; filters on status, feeder, region and start in [from, before)."""
    queryset = OutageIncident.objects.select_related("feeder", "region")
    if status:
        queryset = queryset.filter(status=status)
    if feeder_pk is not None:
        queryset = queryset.filter(feeder_id=feeder_pk)
    if region_pk is not None:
        queryset = queryset.filter(Q(region_id=region_pk) | Q(feeder__region_id=region_pk))
    if started_from is not None:
        queryset = queryset.filter(started_at__gte=started_from)
    if started_before is not None:
        queryset = queryset.filter(started_at__lt=started_before)
    return queryset.order_by("-started_at", "-pk")


def silent_meters(*, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Active meters whose newest reading is MONITORING_SILENT_INTERVALS intervals old or more."""
    now = now or dt.datetime.now(tz=dt.UTC)
    intervals = settings.MONITORING_SILENT_INTERVALS
    seen = store.last_seen_before(now - dt.timedelta(seconds=intervals * 60))
    rows = Meter.objects.filter(pk__in=list(seen), status=Meter.Status.ACTIVE).select_related("premise__feeder")
    silent = []
    for meter in rows:
        if seen[meter.pk] < now - dt.timedelta(seconds=intervals * meter.interval_s):
            feeder = meter.premise.feeder if meter.premise else None
            silent.append(
                {
                    "meter": meter.pk,
                    "serial": meter.serial,
                    "feeder": feeder.code if feeder else None,
                    "last_reading": seen[meter.pk],
                    "silent_intervals": int((now - seen[meter.pk]).total_seconds() // meter.interval_s),
                }
            )
    return sorted(silent, key=lambda row: row["last_reading"])


def active_anomalies(
    *,
    region_pk: int | None = None,
    feeder_pk: int | None = None,
    meter_pk: int | None = None,
    now: dt.datetime | None = None,
    include_info: bool = False,
    limit: int = 500,
) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(tz=dt.UTC)
    return store.anomalies(
        meter_pk=meter_pk,
        feeder_pk=feeder_pk,
        region_pk=region_pk,
        since=now - ACTIVE_WINDOW,
        min_severity=None if include_info else ALERTING,
        limit=limit,
    )


def anomaly_counts(*, group_by: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Active anomalies counted by "region", "feeder" or "meter_id", per severity."""
    now = now or dt.datetime.now(tz=dt.UTC)
    return store.anomaly_counts(since=now - ACTIVE_WINDOW, group_by=group_by)


def meter_anomaly_history(
    *, meter_pk: int, start: dt.datetime | None = None, end: dt.datetime | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    return store.anomalies(meter_pk=meter_pk, since=start, until=end, limit=limit)
