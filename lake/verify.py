"""Verify a day of the lake: its Parquet file against its manifest, and against MongoDB.

A day passes when the file read back has the rows, meters, energy sums and time bounds its
manifest records, and, while MongoDB still holds the day, the same figures as MongoDB's deduped
rows. Tiering trusts nothing older than a verification made right before it deletes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from lake.errors import LakeError
from lake.export import partition_totals, read_manifest
from lake.models import LakeDay
from lake.paths import lake
from lake.totals import Totals, TotalsBuilder
from mdms.core.localtime import day_bounds
from mdms.core.timeseries import archive

_ENERGIES = ("energy_import_kwh", "energy_export_kwh")


@dataclass(frozen=True)
class VerifyResult:
    kind: str
    day: dt.date
    problems: list[str] = field(default_factory=list)
    lake: Totals | None = None
    mongo: Totals | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def mongo_totals(kind: archive.Kind, day: dt.date) -> Totals:
    """The figures of the day's deduped rows in MongoDB, streamed."""
    start, end = day_bounds(day)
    builder = TotalsBuilder()
    fields = _ENERGIES if kind == "readings" else ()
    for documents in archive.deduped_batches(kind, start, end, fields=fields):
        builder.add_documents(documents)
    return builder.totals()


def _lake_problems(kind: archive.Kind, day: dt.date) -> tuple[list[str], Totals | None]:
    where = lake()
    path = where.data_path(kind, day)
    if not where.fs.exists(path):
        return [f"the partition file {where.display(path)} is missing"], None
    manifest = read_manifest(where, kind, day)
    if manifest is None:
        return [f"the manifest of {where.display(where.partition(kind, day))} is missing"], None
    try:
        from_file = partition_totals(where, path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        return [f"the partition file {where.display(path)} cannot be read: {exc}"], None
    recorded = Totals.from_json(manifest)
    differences = from_file.differences(recorded)
    if differences:
        return [f"the file does not match its manifest ({'; '.join(differences)})"], from_file
    return [], from_file


def lake_day_verify(*, kind: archive.Kind, day: dt.date, record: bool = True) -> VerifyResult:
    """Check one day; with `record`, mark it verified or store the problem on its LakeDay."""
    row = LakeDay.objects.filter(day=day, kind=kind).first()
    if row is None:
        raise LakeError(f"{kind} of {day} are not in the lake: export them first (manage.py lake_export --day {day})")
    problems, from_file = _lake_problems(kind, day)
    mongo: Totals | None = None
    if row.status == LakeDay.Status.TIERED:
        # MongoDB no longer holds the day: the file must still say what was verified before tiering.
        if from_file is not None and (from_file.rows, from_file.meters) != (row.rows, row.meters):
            problems.append(f"the file has {from_file.rows} rows, {row.rows} were tiered")
    elif from_file is not None:
        mongo = mongo_totals(kind, day)
        differences = from_file.differences(mongo)
        if differences:
            problems.append(f"MongoDB and the lake differ (lake vs MongoDB: {'; '.join(differences)})")
    result = VerifyResult(kind=kind, day=day, problems=problems, lake=from_file, mongo=mongo)
    if record:
        now = timezone.now()
        if result.ok:
            status = LakeDay.Status.VERIFIED if row.status == LakeDay.Status.EXPORTED else row.status
            LakeDay.objects.filter(pk=row.pk).update(status=status, verified_at=now, error="", error_at=None)
        else:
            LakeDay.objects.filter(pk=row.pk).update(error=f"verification failed: {'; '.join(problems)}", error_at=now)
    return result
