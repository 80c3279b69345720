"""One list of a reading's fields: parsing, storage and the lake all derive from READING_FIELDS."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from ingest import parsing
from lake import schema
from mdms.core.reading_fields import READING_FIELD_NAMES, READING_FIELDS, VALUE_FIELD_NAMES, Kind
from mdms.core.timeseries import readings

TS = dt.datetime(2026, 11, 1, 0, 15, tzinfo=dt.UTC)


def test_parsing_checks_every_measure_against_the_range_the_list_gives() -> None:
    measures = {field.name: (field.low, field.high) for field in READING_FIELDS if field.kind == Kind.MEASURE}
    assert measures == parsing.RANGES
    assert parsing.RANGES["power_factor"] == (-1.0, 1.0)
    assert parsing.MEASURED_FIELDS == VALUE_FIELD_NAMES


def test_the_lake_has_one_column_per_field_described_in_its_unit() -> None:
    columns = {name: (type_, meaning) for name, type_, meaning in schema.READING_COLUMNS}
    for field in READING_FIELDS:
        type_, meaning = columns[field.name]
        assert meaning == field.meaning
        assert type_ == (pa.int32() if field.kind == Kind.INTERVAL else pa.float64())
    assert "-1 to 1" in columns["power_factor"][1]


def test_storage_keeps_exactly_the_listed_fields() -> None:
    values = dict.fromkeys(VALUE_FIELD_NAMES, 1.0) | {"not_a_field": 5.0}
    document = readings.reading_document(meter_pk=1, ts=TS, received_at=TS, values=values, interval_s=900)
    assert set(readings.measured(document)) == set(READING_FIELD_NAMES)
