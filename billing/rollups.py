"""Keeping the daily rollups current: from the stored-batches stream, and by backfill.

Each stored batch says which meters and which interval ends it wrote. The local days those
intervals fall in are recomputed whole from the raw readings (mdms.core.timeseries.rollups), so
late data fixes exactly the days it touches and a duplicate changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from billing.replacements import replacements_record
from lake.restore import lake_raw_ensure
from mdms.core import stored_batches
from mdms.core.followers import follower_run
from mdms.core.localtime import local_day, local_midnight
from mdms.core.models import Meter
from mdms.core.reading_fields import DEFAULT_INTERVAL_S
from mdms.core.timeseries import rollups as store

GROUP = "rollups"
# A backfill recomputes stretches of days, each in chunks of meters of about this many meter-days
# (400,000 15-minute readings, a few seconds of one aggregation and well within its memory), and
# runs two aggregations at once: one aggregation uses one core of MongoDB, and the machine has two.
BACKFILL_DAYS = 8
BACKFILL_METER_DAYS = 4_000
BACKFILL_PARALLEL = 2
# A follower run takes the stream in rounds of this many entries and starts no new round after
# its budget: it acknowledges what it did and leaves the rest to the next run.
FOLLOW_TAKE = 100
FOLLOW_BUDGET_S = 10.0


@dataclass(frozen=True)
class FollowResult:
    batches: int
    meter_days: int


def _interval_by_meter(meter_pks: Iterable[int]) -> dict[int, int]:
    pks = list(set(meter_pks))
    known = dict(Meter.objects.filter(pk__in=pks).values_list("pk", "interval_s"))
    # A reading of a meter deleted from Postgres still rolls up, with the default interval.
    return {pk: int(known.get(pk, DEFAULT_INTERVAL_S)) for pk in pks}


def rollups_recompute(*, meter_pks: Sequence[int], first_day: dt.date, end_day: dt.date) -> None:
    """Recompute the daily rollups of these meters for local days first_day <= day < end_day."""
    if not meter_pks or first_day >= end_day:
        return
    # A day tiered to the data lake has no raw readings left: bring them back before recomputing it.
    lake_raw_ensure(first_day=first_day, end_day=end_day)
    start, end = local_midnight(first_day), local_midnight(end_day)
    for interval_s, pks in _by_interval(meter_pks).items():
        store.recompute_daily(pks, start, end, interval_s=interval_s)


def _by_interval(meter_pks: Iterable[int]) -> dict[int, list[int]]:
    """The meters by their interval length, each list sorted (an aggregation assumes one default length)."""
    by_interval: dict[int, list[int]] = defaultdict(list)
    for pk, interval_s in sorted(_interval_by_meter(meter_pks).items()):
        by_interval[interval_s].append(pk)
    return by_interval


def rollups_follow(
    *, consumer: str | None = None, count: int = FOLLOW_TAKE, budget_s: float = FOLLOW_BUDGET_S
) -> FollowResult:
    """Take what the stream holds for the "rollups" group, recompute the days it touched, acknowledge.

    Rounds of up to `count` entries, each acknowledged once stored, until the stream is empty or
    `budget_s` has passed: during a backfill the stream holds hours of work, and one run must
    not hold a worker for all of it (the next run, 5 seconds later, goes on where this one stopped).
    """
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    started = time.monotonic()
    batches = meter_days = 0
    # One run at a time (a second one returns at once); its heartbeat keeps the entries it took.
    with follower_run(GROUP, consumer) as run:
        while run is not None:
            entries = run.take(count=count)
            if not entries:
                break
            readings = [batch for _entry_id, batch in entries if batch.kind == "readings"]
            meter_days += _recompute_touched(readings)
            # Actuals that replaced estimates are judged for billing once their rollups show them.
            replacements_record(readings)
            # Acknowledged only once stored: a crash before this means the entries are redone, harmlessly.
            run.done(entry_id for entry_id, _batch in entries)
            batches += len(entries)
            if time.monotonic() - started >= budget_s:
                break
    return FollowResult(batches, meter_days)


def rollups_owed(*, start: dt.datetime, end: dt.datetime, meter_pks: Iterable[int] | None = None) -> set[int] | None:
    """Meters with readings stored for intervals ending in (start, end] that the rollup follower has not
    recomputed yet: their daily rollups (what billing reads) do not show those readings.

    Of meter_pks when given. None when the follower is too far behind to tell (treat every meter
    as owed). Everything the ingest stored before the follower's oldest unfinished entry is in the
    rollups: the stream itself is the watermark, per meter and time range.
    """
    batches, complete = stored_batches.unfinished(GROUP)
    if not complete:
        return None
    owed: set[int] = set()
    for batch in batches:
        if batch.kind == "readings" and batch.min_ts <= end and batch.max_ts > start:
            owed.update(batch.meter_pks)
    return owed if meter_pks is None else owed & set(meter_pks)


def _recompute_touched(batches: Sequence[stored_batches.StoredBatch]) -> int:
    """Recompute the local days these stored batches touched; returns the meter-days recomputed."""
    intervals = _interval_by_meter(pk for batch in batches for pk in batch.meter_pks)
    meters_by_day: dict[dt.date, set[int]] = defaultdict(set)
    for batch in batches:
        longest = dt.timedelta(seconds=max((intervals[pk] for pk in batch.meter_pks), default=DEFAULT_INTERVAL_S))
        day = local_day(batch.min_ts - longest)
        last = local_day(batch.max_ts - dt.timedelta(microseconds=1))
        while day <= last:
            meters_by_day[day].update(batch.meter_pks)
            day += dt.timedelta(days=1)
    for day, pks in sorted(meters_by_day.items()):
        ordered = sorted(pks)
        for offset in range(0, len(ordered), BACKFILL_METER_DAYS):
            chunk = ordered[offset : offset + BACKFILL_METER_DAYS]
            rollups_recompute(meter_pks=chunk, first_day=day, end_day=day + dt.timedelta(days=1))
    return sum(len(pks) for pks in meters_by_day.values())


def rollups_rebuild(
    *,
    first_day: dt.date,
    end_day: dt.date,
    meter_pks: Sequence[int] | None = None,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Backfill: recompute every meter-day in [first_day, end_day), BACKFILL_DAYS days at a time; returns days done.

    Without meter_pks, the meters that have readings in each stretch of days. The meters of a
    stretch go in chunks of about BACKFILL_METER_DAYS meter-days, BACKFILL_PARALLEL aggregations
    at once. `progress(n)` is called after each stretch of n days.
    """
    # Backfilling an archived range reads it back from the data lake first (tiered days only).
    lake_raw_ensure(first_day=first_day, end_day=end_day)
    days = 0
    day = first_day
    with ThreadPoolExecutor(max_workers=BACKFILL_PARALLEL) as pool:
        while day < end_day:
            next_day = min(end_day, day + dt.timedelta(days=BACKFILL_DAYS))
            span = (next_day - day).days
            pks = list(meter_pks) if meter_pks is not None else _meters_in(day, next_day)
            start, end = local_midnight(day), local_midnight(next_day)
            per_chunk = max(1, BACKFILL_METER_DAYS // span)
            # The threads only wait on MongoDB; the meters' intervals are read here, on this thread's connection.
            jobs = [
                pool.submit(store.recompute_daily, chunk, start, end, interval_s=interval_s)
                for interval_s, same in _by_interval(pks).items()
                for chunk in (same[offset : offset + per_chunk] for offset in range(0, len(same), per_chunk))
            ]
            for job in jobs:
                job.result()
            days += span
            if progress is not None:
                progress(span)
            day = next_day
    return days


def _meters_in(day: dt.date, next_day: dt.date) -> list[int]:
    # Interval ends fall up to one interval after the day's end; an hour covers every interval length in use.
    return store.meters_with_readings(local_midnight(day), local_midnight(next_day) + dt.timedelta(hours=1))
