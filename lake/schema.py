"""The Parquet schemas of the lake, with every column's unit, and the conversions to and from MongoDB.

The files describe themselves for Athena-style queries: besides the meter's pk they carry its
serial, feeder and region *as of the export* (a meter moved later keeps, in the lake, the grid
position it had when the day was archived), and the local day. The partition column `dt` is in
the path only (Hive style); `local_date` repeats it in the file so a file read alone still says
its day. docs/lake.md is the reference for users; the two must agree (a test checks the columns).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mdms.core.reading_fields import READING_FIELDS, VALUE_FIELDS, Kind

# Bumped when a column changes meaning or type; written in every manifest and file's metadata.
SCHEMA_VERSION = 1

UTC_MS = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True)
class MeterPlace:
    """Where a meter was on the grid when its day was exported."""

    serial: str | None
    feeder_code: str | None
    region_code: str | None


# (name, type, unit or meaning) of the columns every kind starts with.
_COMMON: list[tuple[str, pa.DataType, str]] = [
    ("meter_pk", pa.int64(), "the meter's id in the MDMS (Meter.pk): stable for the meter's life"),
    ("meter_serial", pa.string(), "the meter's serial number (also its MQTT user name), as of export"),
    ("region_code", pa.string(), "the region of the meter's premise as of export (null if not installed)"),
    ("feeder_code", pa.string(), "the feeder of the meter's premise as of export (null if not installed)"),
    ("local_date", pa.date32(), "the local day (TIME_ZONE) the row belongs to; equals the dt partition"),
]

# The measured fields of a reading (mdms.core.reading_fields): float64, as the meter reported them,
# before the meter multiplier; the interval's length is an int32.
READING_VALUES: list[tuple[str, str]] = [(field.name, field.meaning) for field in VALUE_FIELDS]

READING_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    *_COMMON,
    ("ts", UTC_MS, "interval END, UTC (an interval ending at local midnight belongs to the day before)"),
    ("received_at", UTC_MS, "when the MDMS received this copy, UTC (the first received copy is the one kept)"),
    *[
        (field.name, pa.int32() if field.kind == Kind.INTERVAL else pa.float64(), field.meaning)
        for field in READING_FIELDS
    ],
    # Provenance (mdms.core.reading_quality): kept so that a day restored from the lake reads as before.
    ("origin", pa.string(), "where the reading came from: file, datahub or on_demand; null: MQTT"),
    ("quality", pa.string(), "a quality code its source gave it (estimated_datahub); null: the meter's own value"),
]
# Columns added after the first files were written: an older file lacks them (read as null).
_LATER_READING_COLUMNS = ("origin", "quality")

EVENT_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    *_COMMON,
    ("ts", UTC_MS, "when the event happened, UTC"),
    ("received_at", UTC_MS, "when the MDMS received it, UTC"),
    ("type", pa.string(), "power_off (last gasp), power_on, tamper, ..."),
    ("detail", pa.string(), "the event's detail as JSON text (null if none)"),
]

COLUMNS: dict[str, list[tuple[str, pa.DataType, str]]] = {"readings": READING_COLUMNS, "events": EVENT_COLUMNS}


def schema(kind: str) -> pa.Schema:
    fields = [pa.field(name, type_, metadata={"description": unit}) for name, type_, unit in COLUMNS[kind]]
    return pa.schema(fields, metadata={"mdms_schema_version": str(SCHEMA_VERSION), "mdms_kind": kind})


def to_batch(
    kind: str, documents: Sequence[Mapping[str, Any]], places: Mapping[int, MeterPlace], day: dt.date
) -> pa.RecordBatch:
    """MongoDB documents (deduped, one kind) as a record batch of the lake's schema."""
    columns: dict[str, list[Any]] = {name: [] for name, _type, _unit in COLUMNS[kind]}
    unknown = MeterPlace(None, None, None)
    for document in documents:
        place = places.get(document["meter"], unknown)
        columns["meter_pk"].append(document["meter"])
        columns["meter_serial"].append(place.serial)
        columns["region_code"].append(place.region_code)
        columns["feeder_code"].append(place.feeder_code)
        columns["local_date"].append(day)
        columns["ts"].append(document["ts"])
        columns["received_at"].append(document.get("received_at"))
        if kind == "readings":
            for name, _unit in READING_VALUES:
                value = document.get(name)
                columns[name].append(None if value is None else float(value))
            interval = document.get("interval_s")
            columns["interval_s"].append(None if interval is None else int(interval))
            for name in _LATER_READING_COLUMNS:
                columns[name].append(document.get(name))
        else:
            columns["type"].append(document.get("type"))
            detail = document.get("detail")
            columns["detail"].append(None if detail is None else json.dumps(detail, sort_keys=True, default=str))
    return pa.RecordBatch.from_pydict(columns, schema=schema(kind))


def to_documents(kind: str, table: pa.Table | pa.RecordBatch) -> Iterator[dict[str, Any]]:
    """Rows of the lake as MongoDB documents again: the fields the ingest stored, absent when null."""
    data = table.to_pydict()
    names = [name for name, _value in READING_VALUES] if kind == "readings" else []
    for k in range(table.num_rows):
        document: dict[str, Any] = {"meter": int(data["meter_pk"][k]), "ts": data["ts"][k]}
        if data["received_at"][k] is not None:
            document["received_at"] = data["received_at"][k]
        if kind == "readings":
            for name in names:
                if data[name][k] is not None:
                    document[name] = data[name][k]
            if data["interval_s"][k] is not None:
                document["interval_s"] = int(data["interval_s"][k])
            for name in _LATER_READING_COLUMNS:
                if data.get(name) is not None and data[name][k] is not None:
                    document[name] = data[name][k]
        else:
            document["type"] = data["type"][k]
            detail = data["detail"][k]
            document["detail"] = None if detail is None else json.loads(detail)
        yield document
