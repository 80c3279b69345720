"""What to pull: the daily job's days (yesterday and missed days) and the backfill's chunks.

A day counts as pulled when an ok pull covers it; everything else is asked again, so a run twice,
or a run after a failure, has the effect of one good run (the dedupe guards the storage too).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet

from ingest.datahub.pull import PullBusy, datahub_pull
from ingest.models import DataHubConnector, DataHubPull
from mdms.core.localtime import local_day, local_today

# Enedis serves at most 7 days of load curve per request; other hubs mirror its limits.
CHUNK_DAYS = 7
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Chunk:
    connector: DataHubConnector
    start: dt.date
    end: dt.date  # exclusive


@dataclass
class RunSummary:
    ok: int = 0
    errors: int = 0
    busy: int = 0
    readings_stored: int = 0
    duplicates: int = 0
    failed: list[DataHubPull] = field(default_factory=list)
    next_after_pk: int | None = None  # set when the run stopped at its time budget

    def add(self, pull: DataHubPull) -> None:
        if pull.status == DataHubPull.Status.OK:
            self.ok += 1
            self.readings_stored += pull.readings_stored
            self.duplicates += pull.duplicates
        else:
            self.errors += 1
            self.failed.append(pull)


def days_pulled(connectors: Iterable[DataHubConnector], start: dt.date, end: dt.date) -> dict[int, set[dt.date]]:
    """Per connector pk, the days start <= day < end that an ok pull of it covers (one query for all)."""
    covered: dict[int, set[dt.date]] = defaultdict(set)
    ranges = DataHubPull.objects.filter(
        connector__in=list(connectors), status=DataHubPull.Status.OK, start_day__lt=end, end_day__gt=start
    ).values_list("connector_id", "start_day", "end_day")
    for connector_pk, first, after in ranges:
        day = max(first, start)
        while day < min(after, end):
            covered[connector_pk].add(day)
            day += ONE_DAY
    return covered


def chunks(days: Iterable[dt.date], *, size: int = CHUNK_DAYS) -> Iterator[tuple[dt.date, dt.date]]:
    """Consecutive runs of the (sorted, distinct) days, cut into [start, end) ranges of at most size days."""
    run_start: dt.date | None = None
    previous: dt.date | None = None
    for day in sorted(set(days)):
        if run_start is None or previous is None or day != previous + ONE_DAY or (day - run_start).days >= size:
            if run_start is not None and previous is not None:
                yield run_start, previous + ONE_DAY
            run_start = day
        previous = day
    if run_start is not None and previous is not None:
        yield run_start, previous + ONE_DAY


def plan(connectors: Iterable[DataHubConnector], start: dt.date, end: dt.date, *, force: bool = False) -> list[Chunk]:
    """The requests that pull start <= day < end for each connector, skipping days pulled ok unless force."""
    connectors = list(connectors)
    pulled = {} if force else days_pulled(connectors, start, end)
    planned: list[Chunk] = []
    for connector in connectors:
        wanted = {start + dt.timedelta(days=n) for n in range((end - start).days)}
        wanted -= pulled.get(connector.pk, set())
        planned.extend(Chunk(connector, first, after) for first, after in chunks(wanted))
    return planned


def catch_up_window(connector: DataHubConnector, today: dt.date) -> tuple[dt.date, dt.date]:
    """[start, end) of the days the daily job owes the connector: the last DATAHUB_CATCHUP_DAYS days up to
    yesterday, not before the day before the connector was created (older history is the backfill's)."""
    yesterday = today - ONE_DAY
    created = local_day(connector.created_at) - ONE_DAY
    return max(yesterday - dt.timedelta(days=settings.DATAHUB_CATCHUP_DAYS - 1), created), today


def enabled_connectors() -> QuerySet[DataHubConnector]:
    return DataHubConnector.objects.filter(enabled=True).select_related("meter").order_by("pk")


def datahub_pull_due(*, today: dt.date | None = None, after_pk: int = 0, budget_s: float | None = None) -> RunSummary:
    """The daily job: for each enabled connector (by pk, after after_pk), pull yesterday and any day of
    the catch-up window not pulled ok yet. Stops after budget_s, saying where to go on from."""
    today = today or local_today()
    started = time.monotonic()
    summary = RunSummary()
    for connector in enabled_connectors().filter(pk__gt=after_pk):
        start, end = catch_up_window(connector, today)
        for chunk in plan([connector], start, end) if start < end else []:
            try:
                summary.add(
                    datahub_pull(
                        connector=connector, start=chunk.start, end=chunk.end, trigger=DataHubPull.Trigger.DAILY
                    )
                )
            except PullBusy:
                summary.busy += 1
        if budget_s is not None and time.monotonic() - started > budget_s:
            summary.next_after_pk = connector.pk
            break
    return summary
