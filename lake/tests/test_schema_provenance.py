"""A reading's provenance survives the lake: exported with it, and read back by a restore."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from lake.schema import MeterPlace, to_batch, to_documents

TS = dt.datetime(2026, 11, 5, 0, 15, tzinfo=dt.UTC)


def test_origin_and_quality_go_to_the_lake_and_come_back() -> None:
    documents = [
        {"meter": 7, "ts": TS, "received_at": TS, "energy_import_kwh": 0.15, "origin": "datahub",
         "quality": "estimated_datahub"},
        {"meter": 7, "ts": TS + dt.timedelta(minutes=15), "received_at": TS, "energy_import_kwh": 0.25},
    ]  # fmt: skip
    batch = to_batch("readings", documents, {7: MeterPlace("M7", "F1", "R1")}, dt.date(2026, 11, 5))

    back = list(to_documents("readings", batch))

    assert back == documents


def test_a_file_written_before_the_provenance_columns_restores_without_them() -> None:
    batch = to_batch("readings", [{"meter": 7, "ts": TS, "energy_import_kwh": 0.25}], {}, dt.date(2026, 11, 5))
    older = pa.Table.from_batches([batch]).drop_columns(["origin", "quality"])

    (document,) = to_documents("readings", older)

    assert document == {"meter": 7, "ts": TS, "energy_import_kwh": 0.25}
