"""Export one local day of raw readings or events from MongoDB to its Parquet partition.

The day is read in batches of meters (mdms.core.timeseries.archive), deduped as every read is
(first received copy), and written as one Parquet file per day and kind, in row groups of
ROW_GROUP_ROWS, first under the lake's `_staging/` and then moved into `dt=YYYY-MM-DD/` under a
fixed name: on a local disk the move is a rename (atomic), on S3 an object copy (a reader sees the
old object or the new one, whole). So re-exporting a day replaces it exactly: the partition then
holds what MongoDB holds, and nothing of the previous export. The manifest is written the same
way, after the data, with figures read back from the staged file.

A tiered day is refused: its raw rows are no longer in MongoDB and the lake holds the only copy.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import pyarrow.parquet as pq
from django.utils import timezone

from lake.errors import LakeError
from lake.models import LakeDay
from lake.paths import DATA_FILE, MANIFEST_FILE, Lake, lake
from lake.schema import SCHEMA_VERSION, MeterPlace, schema, to_batch
from lake.totals import Totals, TotalsBuilder
from mdms.core.localtime import day_bounds
from mdms.core.models import Meter
from mdms.core.timeseries import archive

# Row groups of about 100,000 rows: large enough for Athena and DuckDB to read efficiently, small
# enough that a reader filtering on meter or time skips most of a 10,000-meter day.
ROW_GROUP_ROWS = 100_000


@dataclass(frozen=True)
class ExportResult:
    kind: str
    day: dt.date
    path: str
    totals: Totals


def meter_places() -> dict[int, MeterPlace]:
    """Every meter's serial, feeder and region now: the export records them as of its own time."""
    rows = Meter.objects.values_list("pk", "serial", "premise__feeder__code", "premise__feeder__region__code")
    return {pk: MeterPlace(serial, feeder, region) for pk, serial, feeder, region in rows}


def read_manifest(where: Lake, kind: str, day: dt.date) -> dict[str, object] | None:
    path = where.manifest_path(kind, day)
    if not where.fs.exists(path):
        return None
    with where.fs.open(path, "rb") as handle:
        loaded: dict[str, object] = json.load(handle)
    return loaded


def partition_totals(where: Lake, path: str) -> Totals:
    """The figures of a Parquet file of the lake, read a row group at a time."""
    builder = TotalsBuilder()
    with where.fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        names = [
            n for n in ("meter_pk", "ts", "energy_import_kwh", "energy_export_kwh") if n in parquet.schema_arrow.names
        ]
        for batch in parquet.iter_batches(columns=names, batch_size=ROW_GROUP_ROWS):
            builder.add_batch(batch)
    return builder.totals()


def lake_day_export(*, kind: archive.Kind, day: dt.date, places: dict[int, MeterPlace] | None = None) -> ExportResult:
    """Write (or rewrite) the partition of one local day and kind, and record it as exported."""
    previous = LakeDay.objects.filter(day=day, kind=kind).first()
    if previous is not None and previous.status == LakeDay.Status.TIERED:
        raise LakeError(
            f"{kind} of {day} are tiered: MongoDB no longer holds them and the lake has the only copy. "
            f"Restore them first (manage.py lake_restore --from {day} --to {day + dt.timedelta(days=1)})."
        )
    where = lake()
    places = places if places is not None else meter_places()
    start, end = day_bounds(day)
    token = uuid.uuid4().hex
    staged_data = where.staging_path(f"{kind}-{day.isoformat()}-{token}.parquet")
    staged_manifest = where.staging_path(f"{kind}-{day.isoformat()}-{token}.json")
    where.fs.makedirs(where.staging_path(""), exist_ok=True)
    try:
        with where.fs.open(staged_data, "wb") as handle, pq.ParquetWriter(handle, schema(kind)) as writer:
            for documents in archive.deduped_batches(kind, start, end):
                writer.write_batch(to_batch(kind, documents, places, day), row_group_size=ROW_GROUP_ROWS)
        totals = partition_totals(where, staged_data)
        exported_at = timezone.now()
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "kind": kind,
            "day": day.isoformat(),
            "file": DATA_FILE,
            "utc_start": start.isoformat(),
            "utc_end": end.isoformat(),
            **totals.as_json(),
            "exported_at": exported_at.astimezone(dt.UTC).isoformat(),
        }
        with where.fs.open(staged_manifest, "w") as text:
            json.dump(manifest, text, indent=2, sort_keys=True)
        partition = where.partition(kind, day)
        where.fs.makedirs(partition, exist_ok=True)
        where.fs.mv(staged_data, where.data_path(kind, day))
        where.fs.mv(staged_manifest, where.manifest_path(kind, day))
        # Anything else in the partition (a file an older layout or a hand left) is not this export's.
        for other in where.fs.ls(partition, detail=False):
            if str(other).rstrip("/").rsplit("/", 1)[-1] not in (DATA_FILE, MANIFEST_FILE):
                where.fs.rm(other, recursive=True)
    finally:
        for leftover in (staged_data, staged_manifest):
            if where.fs.exists(leftover):
                where.fs.rm(leftover)
    LakeDay.objects.update_or_create(
        day=day,
        kind=kind,
        defaults={
            "status": LakeDay.Status.EXPORTED,
            "path": where.display(where.data_path(kind, day)),
            "rows": totals.rows,
            "meters": totals.meters,
            "energy_import_kwh": totals.energy_import_kwh,
            "energy_export_kwh": totals.energy_export_kwh,
            "min_ts": totals.min_ts,
            "max_ts": totals.max_ts,
            "exported_at": exported_at,
            "verified_at": None,
            "error": "",
            "error_at": None,
        },
    )
    return ExportResult(kind=kind, day=day, path=where.display(where.data_path(kind, day)), totals=totals)
