"""The hourly net load of every feeder and region: the history a forecast rests on.

Net load (import - export) is what we forecast, because it is what a feeder carries: solar
export on a street offsets its neighbours' import before the power reaches the feeder head,
so a feeder's loading is its net flow, not the sum of its customers' imports. (Where export
exceeds import the flow reverses; the capacity check compares the absolute value.)

A region's series is the sum of its feeders' (every meter belongs to one feeder). Meters are
mapped to their current premise's feeder, as on the operator's grid page.

A rollup holds 0 for an hour without readings, so a group total of exactly 0 is read as
"no data" (NaN): a feeder of households never draws exactly nothing, and the hours not rolled
up yet at the forecast origin must not look like a sudden drop in load.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from forecast.model import Array, Calendar
from mdms.core.localtime import local_midnight, local_zone
from mdms.core.models import Feeder, Holiday, Meter, Region
from mdms.core.timeseries import load


@dataclass(frozen=True)
class SeriesKey:
    """One forecast series: a region (feeder None) or a feeder of it."""

    region: Region
    feeder: Feeder | None = None

    @property
    def slug(self) -> str:
        return f"feeder-{self.feeder.pk}" if self.feeder else f"region-{self.region.pk}"

    @property
    def label(self) -> str:
        return f"Feeder {self.feeder.code} ({self.region.name})" if self.feeder else f"Region {self.region.name}"

    @property
    def capacity_kw(self) -> float | None:
        if self.feeder is None or self.feeder.capacity_kw is None:
            return None
        return float(self.feeder.capacity_kw)


@dataclass
class History:
    """Hourly net kW of each series over the calendar's hours, NaN where unknown (and after `origin`)."""

    calendar: Calendar
    origin: int  # index of the first hour to forecast
    series: dict[str, Array] = field(default_factory=dict)
    keys: dict[str, SeriesKey] = field(default_factory=dict)
    meters: dict[str, int] = field(default_factory=dict)  # meters on each series now

    def hour(self, index: int) -> dt.datetime:
        return self.calendar.start + dt.timedelta(hours=index)


def holidays_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return list(Holiday.objects.filter(date__gte=first, date__lte=last).values_list("date", flat=True))


def load_history(*, origin: dt.datetime, days: int, horizon: int) -> History:
    """Every region's and feeder's hourly net load over the `days` local days before `origin`.

    `origin` is the top of an hour (UTC): the first hour forecast. The calendar also covers the
    `horizon` hours from it, so that a forecast can be laid over it and compared with what came.
    """
    origin = origin.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    zone = local_zone()
    first_day = origin.astimezone(zone).date() - dt.timedelta(days=days)
    start = local_midnight(first_day)
    end = origin + dt.timedelta(hours=horizon)
    hours = int((end - start) // dt.timedelta(hours=1))
    last_day = end.astimezone(zone).date()
    calendar = Calendar.of(start, hours, zone=zone, holidays=holidays_between(first_day, last_day))
    history = History(calendar=calendar, origin=calendar.index(origin))

    feeders = list(Feeder.objects.select_related("region").order_by("region__code", "code"))
    regions = list(Region.objects.order_by("code"))
    meter_feeders = dict(Meter.objects.filter(premise__isnull=False).values_list("pk", "premise__feeder_id"))
    rows = load.group_net_hourly(meter_feeders, start, local_midnight(last_day + dt.timedelta(days=1)))
    per_feeder: dict[int, Array] = {feeder.pk: np.zeros(hours) for feeder in feeders}
    for row in rows:
        index = calendar.index(row.hour)
        if 0 <= index < history.origin and row.group in per_feeder:
            per_feeder[row.group][index] += row.net_kwh
    on_feeder = Counter(meter_feeders.values())
    for region in regions:
        region_key = SeriesKey(region=region)
        history.keys[region_key.slug] = region_key  # each region listed before its feeders
        total = np.zeros(hours)
        region_meters = 0
        for feeder in (f for f in feeders if f.region_id == region.pk):
            values = per_feeder[feeder.pk]
            key = SeriesKey(region=region, feeder=feeder)
            history.series[key.slug] = _unknown_as_nan(values, history.origin)
            history.keys[key.slug] = key
            history.meters[key.slug] = on_feeder.get(feeder.pk, 0)
            total += values
            region_meters += on_feeder.get(feeder.pk, 0)
        history.series[region_key.slug] = _unknown_as_nan(total, history.origin)
        history.meters[region_key.slug] = region_meters
    return history


def _unknown_as_nan(values: Array, origin: int) -> Array:
    result = np.where(values == 0.0, np.nan, values)
    result[origin:] = np.nan
    return result


def actual_series(history: History, slug: str, first: int, count: int) -> Array:
    """The known hourly values of a series from hour index `first`, NaN beyond what is known."""
    values = history.series[slug]
    out = np.full(count, np.nan)
    stop = min(first + count, history.origin)
    if stop > first:
        out[: stop - first] = values[first:stop]
    return out
