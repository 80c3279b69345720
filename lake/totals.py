"""What a day's rows add up to: the figures a manifest records and verification compares.

Sums are exact (math.fsum, correctly rounded whatever the order), so the same rows give the same
figures read from MongoDB in one order and from Parquet in another: the comparison needs no
tolerance, and a changed value anywhere shows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Totals:
    rows: int
    meters: int
    energy_import_kwh: float
    energy_export_kwh: float
    min_ts: dt.datetime | None
    max_ts: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        for name in ("min_ts", "max_ts"):
            moment = values[name]
            values[name] = moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> Totals:
        def moment(raw: str | None) -> dt.datetime | None:
            return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None

        return cls(
            rows=int(values["rows"]),
            meters=int(values["meters"]),
            energy_import_kwh=float(values["energy_import_kwh"]),
            energy_export_kwh=float(values["energy_export_kwh"]),
            min_ts=moment(values.get("min_ts")),
            max_ts=moment(values.get("max_ts")),
        )

    def differences(self, other: Totals) -> list[str]:
        """What differs, in words ("rows 96 here, 95 there"); empty when equal."""
        return [
            f"{name} {mine} vs {theirs}"
            for name, mine, theirs in (
                (name, getattr(self, name), getattr(other, name))
                for name in ("rows", "meters", "energy_import_kwh", "energy_export_kwh", "min_ts", "max_ts")
            )
            if mine != theirs
        ]


class TotalsBuilder:
    """Accumulates totals batch by batch (a day is never held whole)."""

    def __init__(self) -> None:
        self.rows = 0
        self.meters: set[int] = set()
        self.imports: list[np.ndarray[Any, Any]] = []
        self.exports: list[np.ndarray[Any, Any]] = []
        self.min_ts: dt.datetime | None = None
        self.max_ts: dt.datetime | None = None

    def _times(self, low: dt.datetime | None, high: dt.datetime | None) -> None:
        if low is not None and (self.min_ts is None or low < self.min_ts):
            self.min_ts = low
        if high is not None and (self.max_ts is None or high > self.max_ts):
            self.max_ts = high

    def add_documents(self, documents: Sequence[Mapping[str, Any]]) -> None:
        if not documents:
            return
        self.rows += len(documents)
        self.meters.update(int(d["meter"]) for d in documents)
        self.imports.append(np.array([d.get("energy_import_kwh") or 0.0 for d in documents], dtype=np.float64))
        self.exports.append(np.array([d.get("energy_export_kwh") or 0.0 for d in documents], dtype=np.float64))
        times = [d["ts"] for d in documents]
        self._times(min(times), max(times))

    def add_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        self.rows += batch.num_rows
        self.meters.update(batch.column("meter_pk").to_pylist())
        for name, sink in (("energy_import_kwh", self.imports), ("energy_export_kwh", self.exports)):
            if name in batch.schema.names:
                sink.append(batch.column(name).fill_null(0.0).to_numpy(zero_copy_only=False))
        bounds = pc.min_max(batch.column("ts"))
        self._times(bounds["min"].as_py(), bounds["max"].as_py())

    def totals(self) -> Totals:
        return Totals(
            rows=self.rows,
            meters=len(self.meters),
            energy_import_kwh=_exact_sum(self.imports),
            energy_export_kwh=_exact_sum(self.exports),
            min_ts=self.min_ts,
            max_ts=self.max_ts,
        )


def _exact_sum(parts: Iterable[np.ndarray[Any, Any]]) -> float:
    return math.fsum(value for part in parts for value in part.tolist())
