"""Local days (settings.TIME_ZONE) as UTC ranges: a day has 23, 24 or 25 hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from billing.selectors import local_day, local_midnight


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return local_midnight(day), local_midnight(day + dt.timedelta(days=1))


def local_today(now: dt.datetime | None = None) -> dt.date:
    return local_day(now or dt.datetime.now(dt.UTC))


def each_day(first: dt.date, end: dt.date) -> Iterator[dt.date]:
    """first <= day < end."""
    day = first
    while day < end:
        yield day
        day += dt.timedelta(days=1)
