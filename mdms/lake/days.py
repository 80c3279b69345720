"""Local days (settings.TIME_ZONE) as UTC ranges: a day has 23, 24 or 25 hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from django.conf import settings


def local_zone() -> ZoneInfo:
    return ZoneInfo(str(settings.TIME_ZONE))


def local_midnight(day: dt.date) -> dt.datetime:
    """The UTC instant a local day starts, whatever DST does that day."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=local_zone()).astimezone(dt.UTC)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return local_midnight(day), local_midnight(day + dt.timedelta(days=1))


def local_today(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(local_zone()).date()


def local_date_of(moment: dt.datetime) -> dt.date:
    return moment.astimezone(local_zone()).date()


def each_day(first: dt.date, end: dt.date) -> Iterator[dt.date]:
    """first <= day < end."""
    day = first
    while day < end:
        yield day
        day += dt.timedelta(days=1)
