"""The pure, seeded measurement model: what one household draws and produces, interval by interval.

No I/O and no clock: the same profile, seed and interval give the same sample. Each UTC day has
its own random stream, so a backfill and a real-time run produce the same day alike, and one
day costs nothing to reach from another. Appliance bursts started late in a day carry over.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
import zlib
import zoneinfo
from dataclasses import dataclass, field

from ingest.simulator.profiles import MeterProfile

# The demo grid is around Lyon; the sun's position only needs to be roughly right.
LATITUDE_DEG = 45.76
LONGITUDE_DEG = 4.85
# Voltage stays within ±2% of nominal in normal operation (EN 50160 allows ±10%): the faults
# module is what leaves that band.
VOLTAGE_BAND = 0.02
FREQUENCY_BAND_HZ = 0.05
# Days differ as a whole (guests, a day out, laundry day): each day's activity is scaled by a factor
# drawn around 1 with this spread. The real house in Sceaux (bench/realdata.py) varies by 33 % from
# day to day (coefficient of variation of daily energy), the simulator's did by 17 % without it.
DAY_FACTOR_SIGMA = 0.25


@dataclass(frozen=True)
class Appliance:
    name: str
    power_w: float  # average while running (thermostats and motor cycles included)
    duration_s: int
    per_day: float  # starts per day for a two-person household
    hours: tuple[float, ...]  # local hours around which it tends to start


APPLIANCES = (
    Appliance("kettle", 2000.0, 180, 2.0, (7.0, 16.5, 20.0)),
    Appliance("oven", 1600.0, 2700, 0.45, (12.0, 19.0)),
    Appliance("washer", 850.0, 5400, 0.35, (10.0, 14.0, 20.5)),
    Appliance("dishwasher", 1000.0, 4800, 0.4, (13.5, 21.5)),
)


@dataclass(frozen=True)
class Sample:
    """One interval as the meter measured it: averages over (end - interval_s, end]."""

    end: dt.datetime  # UTC
    interval_s: int
    consumption_w: float
    production_w: float
    voltage_v: float
    frequency_hz: float
    power_factor: float


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _gauss(x: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2)


def activity_shape(local_hour: float, weekend: bool) -> float:
    """Occupant activity over a local day, in watts for a two-person home: morning and evening peaks.

    The evening was compared with a real French house (UCI, Sceaux; bench/realdata.py): its
    evening peak is at 20:00-21:00 on weekdays and weekends alike, and broader and lower against
    the day's mean than the simulator's was (19:00, 2.5 times the mean hour against 1.8).
    """
    if weekend:
        return (
            120.0
            + 450.0 * _gauss(local_hour, 9.5, 1.4)
            + 420.0 * _gauss(local_hour, 13.0, 1.8)
            + 800.0 * _gauss(local_hour, 20.25, 2.0)
        )
    return (
        60.0
        + 550.0 * _gauss(local_hour, 7.25, 0.8)
        + 150.0 * _gauss(local_hour, 13.0, 1.2)
        + 850.0 * _gauss(local_hour, 20.4, 1.9)
    )


def outdoor_temperature_c(day_of_year: int) -> float:
    """Daily mean temperature: about 3 °C late January, 21 °C late July."""
    return 12.0 - 9.0 * math.cos(2.0 * math.pi * (day_of_year - 20) / 365.0)


def sun_elevation_sin(when: dt.datetime) -> float:
    """Sine of the sun's elevation at the demo grid (negative at night)."""
    utc = when.astimezone(dt.UTC)
    day_of_year = utc.timetuple().tm_yday
    declination = math.radians(23.44) * math.sin(2.0 * math.pi * (284 + day_of_year) / 365.0)
    solar_hour = utc.hour + utc.minute / 60.0 + utc.second / 3600.0 + LONGITUDE_DEG / 15.0
    hour_angle = math.radians(15.0 * (solar_hour - 12.0))
    latitude = math.radians(LATITUDE_DEG)
    return math.sin(latitude) * math.sin(declination) + math.cos(latitude) * math.cos(declination) * math.cos(
        hour_angle
    )


def feeder_load_fraction(local_hour: float, weekend: bool) -> float:
    """How loaded a residential feeder is, 0 (night) to 1 (winter evening peak)."""
    return min(1.0, activity_shape(local_hour, weekend) / 1100.0)


@functools.lru_cache(maxsize=8192)
def _unit_noise(*parts: object) -> float:
    """A cheap deterministic value in [-1, 1], shared by everyone who names the same parts (and kept
    for the next meter of a fleet, which asks for the same interval's grid noise)."""
    return zlib.crc32(":".join(map(str, parts)).encode()) / 0x7FFFFFFF - 1.0


@dataclass(frozen=True, slots=True)
class _Moment:
    """What the load model draws from an interval's middle alone, the same for every household in one
    time zone: worked out once per interval for the whole fleet (_moment), not once per meter."""

    local_hour: float
    weekend: bool
    activity: float  # activity_shape, for a two-person home
    temperature_c: float
    heating_demand: float
    heating_shape: float
    winter_extra: float
    feeder_load: float  # feeder_load_fraction
    sun_elevation_sin: float
    closeness: tuple[float, ...]  # per appliance, how near its preferred hours


@functools.lru_cache(maxsize=4096)
def _moment(end_s: int, interval_s: int, tz: zoneinfo.ZoneInfo) -> _Moment:
    """The moment of the interval ending at `end_s` (a UNIX time), at its middle."""
    middle = dt.datetime.fromtimestamp(end_s, tz=dt.UTC) - dt.timedelta(seconds=interval_s / 2)
    local = middle.astimezone(tz)
    local_hour = local.hour + local.minute / 60.0
    weekend = local.weekday() >= 5
    temperature = outdoor_temperature_c(local.timetuple().tm_yday)
    return _Moment(
        local_hour=local_hour,
        weekend=weekend,
        activity=activity_shape(local_hour, weekend),
        temperature_c=temperature,
        heating_demand=max(0.0, min(1.0, (16.0 - temperature) / 14.0)),
        heating_shape=0.55 + 0.45 * (_gauss(local_hour, 6.5, 1.5) + _gauss(local_hour, 20.0, 2.5)),
        winter_extra=1.0 + 0.25 * max(0.0, (15.0 - temperature) / 12.0),
        feeder_load=feeder_load_fraction(local_hour, weekend),
        sun_elevation_sin=sun_elevation_sin(middle),
        closeness=tuple(max(_gauss(local_hour, hour, 1.2) for hour in appliance.hours) for appliance in APPLIANCES),
    )


@dataclass
class _Running:
    appliance: Appliance
    start: dt.datetime
    end: dt.datetime


@dataclass
class LoadModel:
    profile: MeterProfile
    seed: int
    time_zone: str = "Europe/Paris"
    _tz: zoneinfo.ZoneInfo = field(init=False)
    _day: dt.date | None = field(default=None, init=False)
    _day_index: int | None = field(default=None, init=False)  # _day as days since the epoch (UTC)
    _rng: random.Random = field(default_factory=random.Random, init=False)
    _cloudiness: float = field(default=0.0, init=False)
    _day_factor: float = field(default=1.0, init=False)
    _running: list[_Running] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._tz = zoneinfo.ZoneInfo(self.time_zone)

    def _enter_day(self, day: dt.date) -> None:
        self._day = day
        self._day_index = day.toordinal() - _EPOCH_ORDINAL
        self._rng = random.Random(f"load:{self.seed}:{self.profile.serial}:{day.isoformat()}")
        # Winter skies are cloudier; a day is clear, mixed or overcast as a whole.
        winter = 0.5 + 0.5 * math.cos(2.0 * math.pi * (day.timetuple().tm_yday - 15) / 365.0)
        self._cloudiness = self._rng.betavariate(1.2 + 1.5 * winter, 2.5 - 1.0 * winter)
        self._day_factor = min(1.8, max(0.4, self._rng.gauss(1.0, DAY_FACTOR_SIGMA)))

    def sample(self, end: dt.datetime, interval_s: int) -> Sample:
        """The interval ending at `end` (UTC, aware). Call in time order for appliance carry-over."""
        start = end - dt.timedelta(seconds=interval_s)
        end_s = int(end.timestamp())
        if (end_s - interval_s) // 86400 != self._day_index:
            self._enter_day(start.date())
        rng = self._rng
        moment = _moment(end_s, interval_s, self._tz)
        people = 0.55 + 0.225 * self.profile.household_size

        activity = moment.activity * people
        heating_demand = moment.heating_demand
        heating = self.profile.heating_w * heating_demand * moment.heating_shape
        # Lighting and more time indoors in winter, for homes without electric heating too.
        consumption = (self.profile.base_load_w + activity * moment.winter_extra * self._day_factor + heating) * max(
            0.4, rng.gauss(1.0, 0.12)
        ) + self._appliances_w(start, end, moment, people, rng)

        production = 0.0
        if self.profile.has_solar:
            elevation = moment.sun_elevation_sin
            if elevation > 0.0:
                cloud = min(1.0, max(0.0, self._cloudiness + rng.gauss(0.0, 0.12)))
                production = self.profile.solar_capacity_kw * 1000.0 * 0.82 * elevation**1.3 * (1.0 - 0.78 * cloud)

        interval_index = end_s // interval_s
        feeder = moment.feeder_load * (0.7 + 0.3 * heating_demand)
        feeder_noise = 0.003 * _unit_noise("feeder", self.seed, self.profile.feeder, interval_index)
        net_w = consumption - production
        own_drop = 0.006 * max(0.0, net_w) / (self.profile.nominal_voltage_v * self.profile.rated_current_a)
        export_rise = 0.008 * max(0.0, -net_w) / max(1.0, self.profile.solar_capacity_kw * 1000.0)
        deviation = 0.012 - 0.024 * feeder + feeder_noise - own_drop + export_rise + rng.gauss(0.0, 0.001)
        deviation = max(-VOLTAGE_BAND, min(VOLTAGE_BAND, deviation))
        # The grid frequency is one for everyone: a slow wander plus a little per-interval noise.
        frequency_offset = 0.03 * math.sin(interval_index / 7.0) + 0.015 * _unit_noise(
            "grid", self.seed, interval_index
        )
        frequency_offset = max(-FREQUENCY_BAND_HZ, min(FREQUENCY_BAND_HZ, frequency_offset))
        # Resistive loads (heating, kettle) have a power factor near 1, electronics at low load less.
        load_share = min(1.0, abs(net_w) / 2500.0)
        power_factor = max(0.8, min(0.99, 0.87 + 0.1 * load_share + rng.gauss(0.0, 0.01)))
        return Sample(
            end=end,
            interval_s=interval_s,
            consumption_w=consumption,
            production_w=production,
            voltage_v=self.profile.nominal_voltage_v * (1.0 + deviation),
            frequency_hz=self.profile.nominal_frequency_hz + frequency_offset,
            power_factor=power_factor,
        )

    def _appliances_w(
        self, start: dt.datetime, end: dt.datetime, moment: _Moment, people: float, rng: random.Random
    ) -> float:
        interval_s = (end - start).total_seconds()
        for appliance, closeness in zip(APPLIANCES, moment.closeness, strict=True):
            # Normalised so that per_day starts spread over the day's preferred hours.
            chance = appliance.per_day * people * closeness * interval_s / (3.0 * 3600.0 * len(appliance.hours))
            if rng.random() < chance:
                begins = start + dt.timedelta(seconds=rng.uniform(0.0, interval_s))
                self._running.append(_Running(appliance, begins, begins + dt.timedelta(seconds=appliance.duration_s)))
        if not self._running:
            return 0.0
        energy_ws = 0.0
        for running in self._running:
            overlap = (min(end, running.end) - max(start, running.start)).total_seconds()
            if overlap > 0:
                energy_ws += running.appliance.power_w * overlap
        self._running = [running for running in self._running if running.end > end]
        return energy_ws / interval_s
