"""Statistical detection: a robust hour-of-day baseline per meter, and the reference method for scoring.

The MongoDB reference solution flags a value more than 3 population standard deviations from the
mean of the meter's last 12 readings, the new one included. Two weaknesses: the outlier inflates
the very sigma it is judged by (with 12 values one point can never be more than 11/sqrt(12) =
3.18 sigma away, two faulty points never 3), and a 3-hour window calls every evening peak an
anomaly. Here the baseline is the median and the MAD (scaled to a sigma) of the same local hour
of the day over the meter's recent weeks: outliers do not move it, and the evening is compared
with evenings. A deviation must also be electrically meaningful (a floor per field), so that a
meter whose history is very regular does not alarm on a tenth of a volt.

Voltage is judged after taking out what the meter's own load explains. A household's current
drops its own voltage across the service cable (the UCI house in Sceaux: 0.38 V per ampere, 11 V
at 30 A), and on real data the hour-of-day baseline alone called every big kettle-and-oven evening
a voltage anomaly (26 statistical warnings per meter-month, bench/realdata.py). The baseline fits
that drop per meter (least squares of voltage on current, both as deviations from their hour's
median) and judges the voltage the meter would have at no load.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mdms.core.localtime import interval_local_hour
from monitoring.detection import Finding, MeterSpec

K_SIGMA = 3.0
MAD_TO_SIGMA = 1.4826  # for normal data, sigma = 1.4826 x MAD
# An hour bucket needs this many samples (two weeks of one reading an hour) to be trusted; else
# the all-hours baseline is used, and below that nothing is judged statistically.
MIN_SAMPLES = 14
HISTORY = dt.timedelta(days=28)
# The reference's window: the last 12 readings, the new one included.
REFERENCE_WINDOW = 12


@dataclass(frozen=True)
class FieldRule:
    name: str
    sigma_floor: Callable[[MeterSpec], float]  # no baseline is tighter than this
    min_deviation: Callable[[MeterSpec], float]  # nor flags a smaller deviation
    severity: str  # grid quality is the operator's business; load is the customer's


FIELDS: tuple[FieldRule, ...] = (
    # A real low-voltage network wanders by +-4% within days (the UCI house: 26 warnings per
    # meter-month at a 3% floor, 2 at 5%): half the EN 50160 band from this hour's usual is a step
    # worth an operator's look, smaller ones are the grid's weather.
    FieldRule("voltage_v", lambda m: 0.002 * m.nominal_voltage_v, lambda m: 0.05 * m.nominal_voltage_v, "warning"),
    # The grid's frequency wanders by hundredths of a hertz; 0.1 Hz means trouble (or islanding).
    FieldRule("frequency_hz", lambda m: 0.005, lambda m: 0.1, "warning"),
    FieldRule("power_factor", lambda m: 0.01, lambda m: 0.1, "info"),
    # Load: a quarter of the meter's rating away from this hour's usual is unusual consumption.
    FieldRule("current_a", lambda m: 0.5, lambda m: 0.25 * m.rated_current_a, "info"),
    FieldRule("power_w", lambda m: 50.0, lambda m: 0.25 * m.rated_current_a * m.nominal_voltage_v, "info"),
    FieldRule(
        "energy_import_kwh",
        lambda m: 50.0 * m.interval_s / 3.6e6,
        lambda m: 0.25 * m.rated_current_a * m.nominal_voltage_v * m.interval_s / 3.6e6,
        "info",
    ),
)
FIELD_NAMES = tuple(rule.name for rule in FIELDS)
# The service impedance the load correction may assume: no household's cable drops more than a
# volt per ampere, and a negative slope (voltage rising with load) is noise, not physics.
MAX_LOAD_SLOPE_V_PER_A = 1.0


def _robust(values: Sequence[float]) -> list[float]:
    median = statistics.median(values)
    mad = statistics.median([abs(value - median) for value in values])
    return [round(median, 6), round(MAD_TO_SIGMA * mad, 6), len(values)]


def _load_slope(pairs: Sequence[tuple[int, float, float]]) -> float:
    """Volts the meter's voltage drops per ampere it draws: least squares on deviations from each
    hour's medians (so that the grid's daily voltage cycle is not taken for the load's effect)."""
    if len(pairs) < MIN_SAMPLES:
        return 0.0
    volts: list[list[float]] = [[] for _ in range(24)]
    amps: list[list[float]] = [[] for _ in range(24)]
    for hour, voltage, current in pairs:
        volts[hour].append(voltage)
        amps[hour].append(current)
    v_median = [statistics.median(bucket) if bucket else 0.0 for bucket in volts]
    i_median = [statistics.median(bucket) if bucket else 0.0 for bucket in amps]
    covariance = variance = 0.0
    for hour, voltage, current in pairs:
        di = current - i_median[hour]
        covariance += (voltage - v_median[hour]) * di
        variance += di * di
    if variance <= 0:
        return 0.0
    return min(MAX_LOAD_SLOPE_V_PER_A, max(0.0, -covariance / variance))


def baseline(readings: Iterable[Mapping[str, Any]], tz: zoneinfo.ZoneInfo, interval_s: int) -> dict[str, Any]:
    """Median and robust sigma per field, per local hour and over all hours; voltage at no load."""
    by_hour: dict[str, list[list[float]]] = {name: [[] for _ in range(24)] for name in FIELD_NAMES}
    pairs: list[tuple[int, float, float]] = []  # (hour, voltage, current) for the load correction
    for reading in readings:
        hour = interval_local_hour(reading["ts"], interval_s, tz)
        for name in FIELD_NAMES:
            value = reading.get(name)
            if isinstance(value, int | float):
                by_hour[name][hour].append(float(value))
        voltage, current = reading.get("voltage_v"), reading.get("current_a")
        if isinstance(voltage, int | float) and isinstance(current, int | float):
            pairs.append((hour, float(voltage), float(current)))
    slope = _load_slope(pairs)
    if slope > 0:
        by_hour["voltage_v"] = [[] for _ in range(24)]
        for hour, voltage, current in pairs:
            by_hour["voltage_v"][hour].append(voltage + slope * current)
    result: dict[str, Any] = {}
    for name, hours in by_hour.items():
        everything = [value for bucket in hours for value in bucket]
        if len(everything) < MIN_SAMPLES:
            continue
        result[name] = {
            "hours": [_robust(bucket) if len(bucket) >= MIN_SAMPLES else None for bucket in hours],
            "all": _robust(everything),
        }
    if slope > 0 and "voltage_v" in result:
        result["voltage_v"]["load_slope_v_per_a"] = round(slope, 6)
        result["voltage_v"]["current_median_a"] = round(statistics.median(c for _h, _v, c in pairs), 6)
    return result


# Rule names by severity: grid quality (voltage, frequency) alerts operators, load is advisory;
# kept apart so that an alert never carries a load field along, nor the other way round.
RULE_BY_SEVERITY = {"warning": "statistical", "info": "statistical_load"}


def check(
    meter: MeterSpec, reading: Mapping[str, Any], fields: Mapping[str, Any], tz: zoneinfo.ZoneInfo
) -> list[Finding]:
    """The fields of this reading far from the meter's usual for the hour, one finding per severity."""
    hour = interval_local_hour(reading["ts"], meter.interval_s, tz)
    flagged: dict[str, list[str]] = {}
    used: dict[str, dict[str, object]] = {}
    for rule in FIELDS:
        value = reading.get(rule.name)
        stats = fields.get(rule.name)
        if not isinstance(value, int | float) or not stats:
            continue
        median, sigma, n = stats["hours"][hour] or stats["all"]
        sigma = max(sigma, rule.sigma_floor(meter))
        slope = float(stats.get("load_slope_v_per_a", 0.0))
        judged = float(value)
        if slope:
            # At no load: add back the drop the meter's own current causes (its usual current when
            # the reading has none).
            current = reading.get("current_a")
            judged += slope * (float(current) if isinstance(current, int | float) else stats["current_median_a"])
        deviation = abs(judged - median)
        if deviation > K_SIGMA * sigma and deviation > rule.min_deviation(meter):
            flagged.setdefault(rule.severity, []).append(rule.name)
            baseline = used.setdefault(rule.severity, {"method": "median_mad_hour_of_day", "k": K_SIGMA, "hour": hour})
            entry: dict[str, object] = {"median": median, "sigma": round(sigma, 6), "n": n}
            if slope:
                # The voltage this hour's usual means at the load the meter drew.
                entry.update(load_slope_v_per_a=slope, expected=round(median - (judged - float(value)), 3))
            baseline[rule.name] = entry
    return [
        Finding(RULE_BY_SEVERITY[severity], tuple(names), severity, used[severity])
        for severity, names in flagged.items()
    ]


# The reference solution's fields, in this project's names.
REFERENCE_FIELDS = ("voltage_v", "current_a", "power_w", "energy_import_kwh", "frequency_hz", "power_factor")


def reference_flags(window: Sequence[Mapping[str, Any]]) -> list[str]:
    """The reference method on the newest reading of a window of up to 12 (the new one last):
    the fields more than 3 population standard deviations from the window's mean."""
    newest = window[-1]
    flagged = []
    for name in REFERENCE_FIELDS:
        values = [float(r[name]) for r in window if isinstance(r.get(name), int | float)]
        value = newest.get(name)
        if len(values) < 2 or not isinstance(value, int | float):
            continue
        # Plain arithmetic: statistics.pstdev is exact (fractions) and 10x slower on millions of windows.
        mean = sum(values) / len(values)
        sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if sigma > 0 and abs(float(value) - mean) > 3 * sigma:
            flagged.append(name)
    return flagged


def reference_detect(readings: Sequence[Mapping[str, Any]]) -> list[tuple[dt.datetime, list[str]]]:
    """The reference method over one meter's readings in time order: (ts, flagged fields)."""
    found = []
    for index in range(len(readings)):
        window = readings[max(0, index - REFERENCE_WINDOW + 1) : index + 1]
        flagged = reference_flags(window)
        if flagged:
            found.append((readings[index]["ts"], flagged))
    return found
