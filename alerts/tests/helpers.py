"""Shared by the alerts tests: real readings stored and rolled up, and local times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from django.conf import settings

from billing.rollups import rollups_rebuild
from mdms.core.timeseries import readings as stored

STEP = dt.timedelta(minutes=15)


def local(day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A local wall-clock time, as an aware UTC datetime."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(settings.TIME_ZONE)).astimezone(dt.UTC)


def store(
    meter_pk: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    kwh: Callable[[dt.datetime], float] = lambda ts: 0.25,
    power_kw: Callable[[dt.datetime], float] | None = None,
) -> int:
    """15-minute readings with ends in (start, end], rolled up; power_w from power_kw(ts) when given."""
    received = dt.datetime.now(dt.UTC)
    documents = []
    ts = start + STEP
    while ts <= end:
        values = {"energy_import_kwh": kwh(ts), "energy_export_kwh": 0.0}
        if power_kw is not None:
            values["power_w"] = power_kw(ts) * 1000
        documents.append(
            stored.reading_document(meter_pk=meter_pk, ts=ts, received_at=received, values=values, interval_s=900)
        )
        ts += STEP
    stored.insert_readings(documents)
    zone = ZoneInfo(settings.TIME_ZONE)
    first, last = start.astimezone(zone).date(), (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    rollups_rebuild(first_day=first, end_day=last + dt.timedelta(days=1), meter_pks=[meter_pk])
    return len(documents)
