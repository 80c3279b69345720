"""Read archived days back from the lake into MongoDB, for a backfill or a recompute.

Idempotent: a row whose same copy (meter, ts[, type], received_at) is already stored is skipped,
so a restore run twice, or over a day partly restored, stores each row once. After a restore the
day's MongoDB figures are checked against the lake; the day is then `restored` (raw is back), and
tiering removes it again once it has been back RESTORED_KEEP_DAYS.

`lake_raw_ensure` is the guard billing calls before recomputing rollups, validating or editing
a range: the rollups of a tiered day were kept, but recomputing them from a MongoDB without the
raw rows would turn the day into zero, so its raw readings come back from the lake first.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow.parquet as pq
from django.utils import timezone

from lake.errors import LakeError
from lake.export import partition_totals
from lake.models import LakeDay
from lake.paths import lake
from lake.schema import to_documents
from lake.verify import mongo_totals
from mdms.core.timeseries import archive

log = logging.getLogger(__name__)

# Rows read from Parquet and inserted per round: a few seconds of MongoDB work, bounded memory.
RESTORE_BATCH_ROWS = 20_000


@dataclass(frozen=True)
class RestoreResult:
    kind: str
    day: dt.date
    inserted: int
    rows: int


def lake_day_restore(*, kind: archive.Kind, day: dt.date) -> RestoreResult:
    """Read one tiered (or already restored) day back into MongoDB and check it arrived whole."""
    row = LakeDay.objects.filter(day=day, kind=kind).first()
    if row is None:
        raise LakeError(f"{kind} of {day} were never exported to the lake: there is nothing to restore")
    where = lake()
    path = where.data_path(kind, day)
    if not where.fs.exists(path):
        message = f"the partition file {where.display(path)} is missing: {kind} of {day} cannot be restored"
        LakeDay.objects.filter(pk=row.pk).update(error=message, error_at=timezone.now())
        raise LakeError(message)
    inserted = 0
    with where.fs.open(path, "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=RESTORE_BATCH_ROWS):
            inserted += archive.insert_restored(kind, list(to_documents(kind, batch)))
    from_file = partition_totals(where, path)
    differences = from_file.differences(mongo_totals(kind, day))
    if differences:
        message = f"restored, but MongoDB and the lake differ (lake vs MongoDB: {'; '.join(differences)})"
        LakeDay.objects.filter(pk=row.pk).update(error=message, error_at=timezone.now())
        raise LakeError(f"{kind} of {day}: {message}")
    status = LakeDay.Status.RESTORED if row.status in (LakeDay.Status.TIERED, LakeDay.Status.RESTORED) else row.status
    LakeDay.objects.filter(pk=row.pk).update(
        status=status, restored_at=timezone.now(), restored_rows=inserted, error="", error_at=None
    )
    log.info("lake: restored %s of %s (%d rows inserted, %d in the lake)", kind, day, inserted, from_file.rows)
    return RestoreResult(kind=kind, day=day, inserted=inserted, rows=from_file.rows)


def archived_days(first_day: dt.date, end_day: dt.date, kinds: Iterable[str] = archive.KINDS) -> list[LakeDay]:
    """The tiered days of these kinds in [first_day, end_day): their raw rows are only in the lake."""
    return list(
        LakeDay.objects.filter(
            day__gte=first_day, day__lt=end_day, kind__in=list(kinds), status=LakeDay.Status.TIERED
        ).order_by("day", "kind")
    )


def lake_restore(
    *,
    first_day: dt.date,
    end_day: dt.date,
    kinds: Iterable[archive.Kind] = archive.KINDS,
    progress: Callable[[int], object] | None = None,
) -> list[RestoreResult]:
    """Restore every archived day of [first_day, end_day); `progress(1)` after each day and kind."""
    results = []
    for row in archived_days(first_day, end_day, kinds):
        results.append(lake_day_restore(kind=row.kind, day=row.day))  # type: ignore[arg-type]
        if progress is not None:
            progress(1)
    return results


def lake_raw_ensure(*, first_day: dt.date, end_day: dt.date) -> list[dt.date]:
    """Before billing recomputes [first_day, end_day) from raw readings: bring tiered days back first.

    Returns the days restored (usually none: one indexed query). Raises LakeError, naming the day,
    when the lake cannot give a day back, rather than letting a rollup be recomputed to zero.
    """
    days = []
    for row in archived_days(first_day, end_day, kinds=("readings",)):
        log.warning("lake: %s is tiered; restoring its raw readings before recomputing", row.day)
        lake_day_restore(kind="readings", day=row.day)
        days.append(row.day)
    return days
