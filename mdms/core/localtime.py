"""The one home of local-time arithmetic: the utility's zone (settings.TIME_ZONE), its days and hours.

Local days and billing months are in the utility's time zone and are DST-safe: a local day has 23,
24 or 25 hours. Arithmetic is done on UTC instants; a local wall-clock datetime is only ever made
for display or to find where a local day starts. Subtracting a timedelta from a local datetime
subtracts wall-clock time, which is wrong across a DST change: convert to UTC first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from django.conf import settings

ONE_DAY = dt.timedelta(days=1)


def local_zone() -> ZoneInfo:
    return ZoneInfo(str(settings.TIME_ZONE))


def local_midnight(day: dt.date) -> dt.datetime:
    """The aware instant a local day starts (in UTC), whatever DST does that day."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=local_zone()).astimezone(dt.UTC)


def local_at(day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    """The UTC instant of a local wall-clock time (the first one, where the autumn change repeats it)."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=local_zone()).astimezone(dt.UTC)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a local day, as UTC instants."""
    return local_midnight(day), local_midnight(day + ONE_DAY)


def hours_in_day(day: dt.date) -> int:
    start, end = day_bounds(day)
    return int((end - start).total_seconds() // 3600)


def local_day(moment: dt.datetime) -> dt.date:
    """The local day of an instant."""
    return moment.astimezone(local_zone()).date()


def local_today(now: dt.datetime | None = None) -> dt.date:
    return local_day(now or dt.datetime.now(dt.UTC))


def local_hour(moment: dt.datetime) -> int:
    """The local hour of day (0-23) of an instant."""
    return moment.astimezone(local_zone()).hour


def local_time(moment: dt.datetime) -> dt.datetime:
    """An instant as the utility's wall clock shows it (for display and naming, never for arithmetic)."""
    return moment.astimezone(local_zone())


def local_hour_start(moment: dt.datetime) -> dt.datetime:
    """The UTC instant the local clock hour holding `moment` began (a 30-minute zone offset included)."""
    return local_time(moment).replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def interval_local_hour(end: dt.datetime, interval_s: int, zone: ZoneInfo | None = None) -> int:
    """The local hour an interval mostly lies in, from its end (its middle's hour), in `zone` or the
    utility's. Pure callers (the detection core) pass the zone they were given."""
    return (end - dt.timedelta(seconds=interval_s / 2)).astimezone(zone or local_zone()).hour


def each_day(first: dt.date, end: dt.date) -> Iterator[dt.date]:
    """Local days with first <= day < end."""
    day = first
    while day < end:
        yield day
        day += ONE_DAY


def interval_start_local(end: dt.datetime, length_s: int) -> dt.datetime:
    """The local wall-clock start of an interval that ends at `end`, computed on the UTC instant.

    `end` may be in any zone; the result is in the local zone, `length_s` seconds of real time before
    the end, also across a DST change.
    """
    return (end.astimezone(dt.UTC) - dt.timedelta(seconds=length_s)).astimezone(local_zone())
