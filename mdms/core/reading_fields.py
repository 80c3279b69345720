"""The fields of a reading, the one list everything derives from: names, units and plausible ranges.

Parsing (ingest.parsing) refuses a value outside its range; storage (mdms.core.timeseries.readings)
keeps exactly these fields; the lake (lake.schema) makes one column of each, described with its
unit. Pure: no database, no settings, so the parser and the simulator import it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# A meter's reading interval when nothing else says (Meter.interval_s's default, the simulator's,
# and what a query assumes for a reading stored without interval_s): 15 minutes, the commonest.
DEFAULT_INTERVAL_S = 900
# The longest interval a reading may cover.
MAX_INTERVAL_S = 86_400
# The largest plausible active power: a large commercial service behind CT/PT, far above any
# household. It bounds power itself and the energy an interval can hold.
MAX_POWER_W = 2_000_000.0


class Kind(StrEnum):
    ENERGY = "energy"  # kWh in the interval: bounded by MAX_POWER_W over the interval's length
    MEASURE = "measure"  # a value at the interval end, with a fixed plausible range
    INTERVAL = "interval"  # the interval's length, whole seconds


@dataclass(frozen=True)
class ReadingField:
    name: str  # units are in the names
    kind: Kind
    meaning: str  # in words, with the unit: what the lake's column description says
    low: float | None = None  # plausible bounds of a MEASURE (ENERGY: 0 to MAX_POWER_W x interval)
    high: float | None = None


# Plausible bounds reject garbage and unit mistakes (Wh sent as kWh, mV as V), not faults: a sag to
# 150 V or a 49.2 Hz excursion is data the anomaly rules want to see.
READING_FIELDS: tuple[ReadingField, ...] = (
    ReadingField("energy_import_kwh", Kind.ENERGY, "kWh imported in the interval"),
    ReadingField("energy_export_kwh", Kind.ENERGY, "kWh exported in the interval (solar)"),
    ReadingField("register_import_kwh", Kind.MEASURE, "cumulative import register at the interval end, kWh", 0.0, 1e10),
    ReadingField("register_export_kwh", Kind.MEASURE, "cumulative export register at the interval end, kWh", 0.0, 1e10),
    ReadingField("power_w", Kind.MEASURE, "active power at the interval end, W", -MAX_POWER_W, MAX_POWER_W),
    ReadingField("voltage_v", Kind.MEASURE, "RMS voltage, V", 0.0, 1000.0),
    ReadingField("current_a", Kind.MEASURE, "RMS current, A", 0.0, 10_000.0),
    # 0 Hz when the meter lost the grid (a last gasp).
    ReadingField("frequency_hz", Kind.MEASURE, "grid frequency, Hz", 0.0, 70.0),
    # Signed: negative when power flows out (export) or the load leads.
    ReadingField("power_factor", Kind.MEASURE, "power factor, -1 to 1 (negative: exporting)", -1.0, 1.0),
    ReadingField(
        "interval_s", Kind.INTERVAL, "interval length, seconds (null: the meter's configured length)", 1, MAX_INTERVAL_S
    ),
)
READING_FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in READING_FIELDS)
# The measured values: everything but the interval's length.
VALUE_FIELDS: tuple[ReadingField, ...] = tuple(field for field in READING_FIELDS if field.kind != Kind.INTERVAL)
VALUE_FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in VALUE_FIELDS)
