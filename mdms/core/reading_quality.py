"""The one list of an interval's quality codes and sources, with their ESPI numbers (issue 16, section 4).

Every effective interval (mdms.core.timeseries.rollups.effective_intervals) has exactly one quality
code and one source. The code says how trustworthy the value is and, for an estimate, how it was
made; the source says where the value came from. Both travel with the interval into the daily
rollups (counts per code), the billing determinants and bills (share per code), the CSV and Green
Button exports and the REST API. docs/reading-quality.md has the table for people.

The numbers are ESPI's QualityOfReading (usage.xsd of the Green Button Alliance, the values
IntervalReading/ReadingQuality/quality carries):

    0 valid, 7 manually edited, 8 estimated using reference day (a machine computed value from
    historical data of the same measurement), 9 estimated using linear interpolation,
    10 questionable (failed one or more checks), 17 validated.

ESPI has one number for every estimate made from history (8), so the meter's own profile, a
reference day and a data hub's estimate share it; the code keeps the method apart.

How a stored document gets its code (the precedence is the effective value's: an edit, else the
first received reading, else a VEE estimate):

- an edit by billing staff: `edited` (who and why: billing.models.IntervalEdit, by `edit_id`);
- a reading: its own `quality` field when the source said so (a data hub's estimated point:
  `estimated_datahub`), else `questionable` while a VEE rule it failed is open in the exception
  queue, `validated` once billing staff closed that exception without changing the value, else
  `valid`;
- a VEE estimate: by its `method`.

Stored data written before these fields existed reads the same way: a reading without `origin` came
over MQTT (the only door that stored readings without saying so), one without `quality` is `valid`
unless a flag says otherwise, and an estimate without `quality` is judged by its `method`
(docs/reading-quality.md, "Data stored before").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Quality:
    code: str  # what the API, the CSV and the filters say
    espi: int  # ESPI QualityOfReading
    label: str
    estimated: bool = False


VALID = Quality("valid", 0, "Valid: as measured, passed validation")
ESTIMATED_INTERPOLATION = Quality(
    "estimated_interpolation", 9, "Estimated by linear interpolation (or from the register's rise)", True
)
ESTIMATED_PROFILE = Quality("estimated_profile", 8, "Estimated from the meter's own profile", True)
ESTIMATED_REFERENCE_DAY = Quality("estimated_reference_day", 8, "Estimated from a reference day", True)
ESTIMATED_DATAHUB = Quality("estimated_datahub", 8, "Estimated by the data hub that supplied it", True)
# Only where the method was not kept: daily rollups computed before the codes existed.
ESTIMATED = Quality("estimated", 8, "Estimated (method not recorded)", True)
EDITED = Quality("edited", 7, "Edited by billing staff")
QUESTIONABLE = Quality("questionable", 10, "Questionable: failed a VEE rule, not yet worked")
VALIDATED = Quality("validated", 17, "Validated: failed a VEE rule, confirmed by billing staff")

# The order is each code's index in the rollup pipeline and in stored counts: append, never reorder.
QUALITIES: tuple[Quality, ...] = (
    VALID,
    ESTIMATED_INTERPOLATION,
    ESTIMATED_PROFILE,
    ESTIMATED_REFERENCE_DAY,
    ESTIMATED_DATAHUB,
    ESTIMATED,
    EDITED,
    QUESTIONABLE,
    VALIDATED,
)
BY_CODE = {quality.code: quality for quality in QUALITIES}
CODES = tuple(quality.code for quality in QUALITIES)
INDEX = {quality.code: n for n, quality in enumerate(QUALITIES)}
ESTIMATED_CODES = frozenset(quality.code for quality in QUALITIES if quality.estimated)
# Families a filter may name besides the codes themselves.
FAMILIES = {"estimated": ESTIMATED_CODES}

# Sources: where a value came from.
SOURCE_MQTT = "mqtt"  # published by the meter (or its head-end) over MQTT
SOURCE_FILE = "file"  # historical import (manage.py import_readings)
SOURCE_DATAHUB = "datahub"  # pulled from the utility's data hub
SOURCE_ON_DEMAND = "on_demand"  # sent by the meter with its answer to an on-demand read
SOURCE_ESTIMATION = "estimation"  # computed by VEE
SOURCE_MANUAL = "manual"  # typed in by billing staff (an edit)
SOURCES = (SOURCE_MQTT, SOURCE_FILE, SOURCE_DATAHUB, SOURCE_ON_DEMAND, SOURCE_ESTIMATION, SOURCE_MANUAL)
SOURCE_LABELS = {
    SOURCE_MQTT: "MQTT",
    SOURCE_FILE: "File import",
    SOURCE_DATAHUB: "Data hub",
    SOURCE_ON_DEMAND: "On-demand read",
    SOURCE_ESTIMATION: "VEE estimation",
    SOURCE_MANUAL: "Billing staff",
}

# VEE flags on a measured interval (the `interval_flags` collection); the larger wins when two rules
# flag one interval, so one open exception keeps it questionable.
FLAG_VALIDATED = 1
FLAG_QUESTIONABLE = 2


def estimate_quality(method: str | None) -> Quality:
    """The code of a VEE estimate from its method ("linear", "profile+register", "reference_day", ...).

    Spreading the register's rise evenly ("register") interpolates the register: interpolation too.
    """
    method = method or ""
    if method.startswith("linear") or method == "register":
        return ESTIMATED_INTERPOLATION
    if method.startswith("reference_day"):
        return ESTIMATED_REFERENCE_DAY
    return ESTIMATED_PROFILE


def reading_quality(*, stored: str | None, flag: int | None) -> Quality:
    """The code of a measured reading: what its source said, else what VEE found."""
    if stored:
        return BY_CODE.get(stored, VALID)
    if flag == FLAG_QUESTIONABLE:
        return QUESTIONABLE
    if flag == FLAG_VALIDATED:
        return VALIDATED
    return VALID


def parse_filter(text: str) -> frozenset[str]:
    """The codes a `quality` filter names ("estimated", "valid,edited", ...); ValueError naming the bad one."""
    wanted: set[str] = set()
    for part in (piece.strip() for piece in text.split(",")):
        if part in FAMILIES:
            wanted |= FAMILIES[part]
        elif part in BY_CODE:
            wanted.add(part)
        else:
            allowed = ", ".join([*FAMILIES, *CODES])
            raise ValueError(f"unknown quality {part[:40]!r}; use one or more of: {allowed}")
    return frozenset(wanted)


def counts_from_legacy(*, intervals: int, estimated: int, edited: int) -> dict[str, int]:
    """Per-code counts of a daily rollup computed before the codes existed (no method, no flags)."""
    counts = dict.fromkeys(CODES, 0)
    counts[VALID.code] = max(0, intervals - estimated - edited)
    counts[ESTIMATED.code] = estimated
    counts[EDITED.code] = edited
    return counts


def shares(counts: dict[str, int]) -> dict[str, float]:
    """Each code's share of the intervals counted (0..1), codes with none left out."""
    total = sum(counts.values())
    return {code: n / total for code, n in counts.items() if n} if total else {}


def add_counts(into: dict[str, int], more: Iterable[tuple[str, int]]) -> dict[str, int]:
    for code, n in more:
        into[code] = into.get(code, 0) + int(n)
    return into
