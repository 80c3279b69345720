"""Keeping the daily rollups current: from the stored-batches stream, and by backfill.

Each stored batch says which meters and which interval ends it wrote. The local days those
intervals fall in are recomputed whole from the raw readings (mdms.core.timeseries.rollups), so
late data fixes exactly the days it touches and a duplicate changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from billing.selectors import local_midnight, local_zone
from mdms.core import stored_batches
from mdms.core.models import Meter
from mdms.core.timeseries import rollups as store

GROUP = "rollups"
# Meters per aggregation in a backfill: large enough to keep MongoDB busy, small enough to keep
# one $merge well under a second of work.
BACKFILL_CHUNK = 2_000


@dataclass(frozen=True)
class FollowResult:
    batches: int
    meter_days: int


def _interval_by_meter(meter_pks: Iterable[int]) -> dict[int, int]:
    pks = list(set(meter_pks))
    known = dict(Meter.objects.filter(pk__in=pks).values_list("pk", "interval_s"))
    # A reading of a meter deleted from Postgres still rolls up, with the default interval.
    return {pk: int(known.get(pk, 900)) for pk in pks}


def _local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(local_zone()).date()


def rollups_recompute(*, meter_pks: Sequence[int], first_day: dt.date, end_day: dt.date) -> None:
    """Recompute the daily rollups of these meters for local days first_day <= day < end_day."""
    if not meter_pks or first_day >= end_day:
        return
    by_interval: dict[int, list[int]] = defaultdict(list)
    for pk, interval_s in _interval_by_meter(meter_pks).items():
        by_interval[interval_s].append(pk)
    start, end = local_midnight(first_day), local_midnight(end_day)
    for interval_s, pks in by_interval.items():
        store.recompute_daily(sorted(pks), start, end, interval_s=interval_s)


def rollups_follow(*, consumer: str | None = None, count: int = 500) -> FollowResult:
    """Take what the stream holds for the "rollups" group, recompute the days it touched, acknowledge."""
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    entries = stored_batches.take(GROUP, consumer, count=count)
    if not entries:
        return FollowResult(0, 0)
    batches = [batch for _entry_id, batch in entries if batch.kind == "readings"]
    intervals = _interval_by_meter(pk for batch in batches for pk in batch.meter_pks)
    meters_by_day: dict[dt.date, set[int]] = defaultdict(set)
    for batch in batches:
        longest = dt.timedelta(seconds=max((intervals[pk] for pk in batch.meter_pks), default=900))
        day = _local_day(batch.min_ts - longest)
        last = _local_day(batch.max_ts - dt.timedelta(microseconds=1))
        while day <= last:
            meters_by_day[day].update(batch.meter_pks)
            day += dt.timedelta(days=1)
    for day, pks in sorted(meters_by_day.items()):
        rollups_recompute(meter_pks=sorted(pks), first_day=day, end_day=day + dt.timedelta(days=1))
    # Acknowledged only once stored: a crash before this means the entries are redone, harmlessly.
    stored_batches.done(GROUP, [entry_id for entry_id, _batch in entries])
    return FollowResult(len(entries), sum(len(pks) for pks in meters_by_day.values()))


def rollups_rebuild(
    *,
    first_day: dt.date,
    end_day: dt.date,
    meter_pks: Sequence[int] | None = None,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Backfill: recompute every meter-day in [first_day, end_day), a day at a time; returns days done.

    Without meter_pks, the meters that have readings in the range. `progress(1)` is called after each day.
    """
    days = 0
    day = first_day
    while day < end_day:
        next_day = day + dt.timedelta(days=1)
        pks = list(meter_pks) if meter_pks is not None else _meters_in(day, next_day)
        for offset in range(0, len(pks), BACKFILL_CHUNK):
            rollups_recompute(meter_pks=pks[offset : offset + BACKFILL_CHUNK], first_day=day, end_day=next_day)
        days += 1
        if progress is not None:
            progress(1)
        day = next_day
    return days


def _meters_in(day: dt.date, next_day: dt.date) -> list[int]:
    # Interval ends fall up to one interval after the day's end; an hour covers every interval length in use.
    return store.meters_with_readings(local_midnight(day), local_midnight(next_day) + dt.timedelta(hours=1))
