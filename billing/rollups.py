"""Keeping the daily rollups current: from the stored-batches stream, and by backfill.

Each stored batch says which meters and which interval ends it wrote. The local days those
intervals fall in are recomputed whole from the raw readings (mdms.core.timeseries.rollups), so
late data fixes exactly the days it touches and a duplicate changes nothing.

Recomputing a whole day re-reads every reading it already holds: a meter sending one 15-minute
reading at a time has its day re-read for each new reading, about 48 readings read per reading
stored if each were done alone. The follower therefore coalesces: a round takes stream entries
until their meter-days reach FOLLOW_ROUND_METER_DAYS (or FOLLOW_ROUND_ENTRIES entries), and
recomputes each meter-day once for all of them. The further behind the follower is, the more new
readings one recompute covers, so its cost per reading falls as its backlog grows and it catches
up instead of falling further behind. Its totals (mdms.core.followers.counts("rollups")) say
how many readings it re-read per reading stored.
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
from mdms.core.followers import count as follower_count
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
# A follower run takes the stream in pages of this many entries; a round takes pages until its
# meter-days reach FOLLOW_ROUND_METER_DAYS or it holds FOLLOW_ROUND_ENTRIES entries (or the stream
# is empty), recomputes each meter-day once and acknowledges the round. No new round starts after
# the run's budget: the rest is left to the next run. 20,000 meter-days are about 5 aggregations
# of BACKFILL_METER_DAYS, a few seconds of MongoDB.
FOLLOW_TAKE = 100
FOLLOW_ROUND_ENTRIES = 5_000
FOLLOW_ROUND_METER_DAYS = 20_000
FOLLOW_BUDGET_S = 10.0


@dataclass(frozen=True)
class FollowResult:
    batches: int
    meter_days: int
    readings: int = 0  # readings the batches stored (their counts)
    reread: int = 0  # intervals the recomputed meter-days hold: what the recomputes read


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
    batches = meter_days = readings = reread = 0
    # One run at a time (a second one returns at once); its heartbeat keeps the entries it took.
    with follower_run(GROUP, consumer) as run:
        while run is not None:
            entries: list[tuple[str, stored_batches.StoredBatch]] = []
            touched: dict[dt.date, set[int]] = defaultdict(set)
            while len(entries) < FOLLOW_ROUND_ENTRIES and _size(touched) < FOLLOW_ROUND_METER_DAYS:
                page = run.take(count=count)
                if not page:
                    break
                entries.extend(page)
                _add_touched(touched, [batch for _entry_id, batch in page if batch.kind == "readings"])
            if not entries:
                break
            round_reread = _recompute(touched)
            # Actuals that replaced estimates are judged for billing once their rollups show them.
            replacements_record([batch for _entry_id, batch in entries if batch.kind == "readings"])
            # Acknowledged only once stored: a crash before this means the entries are redone, harmlessly.
            run.done(entry_id for entry_id, _batch in entries)
            round_readings = sum(batch.count for _entry_id, batch in entries if batch.kind == "readings")
            follower_count(
                GROUP,
                rounds=1,
                entries=len(entries),
                readings=round_readings,
                meter_days=_size(touched),
                reread=round_reread,
            )
            batches += len(entries)
            meter_days += _size(touched)
            readings += round_readings
            reread += round_reread
            if time.monotonic() - started >= budget_s:
                break
    return FollowResult(batches, meter_days, readings, reread)


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


def _size(touched: dict[dt.date, set[int]]) -> int:
    return sum(len(pks) for pks in touched.values())


def _add_touched(touched: dict[dt.date, set[int]], batches: Sequence[stored_batches.StoredBatch]) -> None:
    """Add the local days these stored batches touched, with their meters, to `touched`."""
    intervals = _interval_by_meter(pk for batch in batches for pk in batch.meter_pks)
    for batch in batches:
        longest = dt.timedelta(seconds=max((intervals[pk] for pk in batch.meter_pks), default=DEFAULT_INTERVAL_S))
        day = local_day(batch.min_ts - longest)
        last = local_day(batch.max_ts - dt.timedelta(microseconds=1))
        while day <= last:
            touched[day].update(batch.meter_pks)
            day += dt.timedelta(days=1)


def _recompute(touched: dict[dt.date, set[int]]) -> int:
    """Recompute these meter-days, each once; returns the intervals they hold (what was re-read)."""
    for day, pks in sorted(touched.items()):
        ordered = sorted(pks)
        for offset in range(0, len(ordered), BACKFILL_METER_DAYS):
            chunk = ordered[offset : offset + BACKFILL_METER_DAYS]
            rollups_recompute(meter_pks=chunk, first_day=day, end_day=day + dt.timedelta(days=1))
    return store.intervals_held({day: sorted(pks) for day, pks in touched.items()})


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
