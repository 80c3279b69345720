"""Test data for the forecast: hourly readings written and rolled up through the real rollup code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from mdms.core.models import Feeder, Meter, Premise, Region
from mdms.core.timeseries import rollups
from mdms.core.timeseries.readings import insert_readings, reading_document

HOUR = dt.timedelta(hours=1)


def zone() -> ZoneInfo:
    return ZoneInfo(str(settings.TIME_ZONE))


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone()).astimezone(dt.UTC)


def evening_peak_kw(moment: dt.datetime) -> float:
    """A household's hourly load with a morning and an evening peak, lower at weekends (kW)."""
    local = moment.astimezone(zone())
    hour = local.hour
    base = 0.4 + (0.8 if 7 <= hour < 9 else 0.0) + (1.6 if 18 <= hour < 22 else 0.0)
    return base * (0.8 if local.weekday() >= 5 else 1.0)


def make_feeder(
    code: str, *, capacity_kw: str | None, meters: int, region_code: str = "fc"
) -> tuple[Feeder, list[int]]:
    region, _ = Region.objects.get_or_create(code=region_code, defaults={"name": f"Region {region_code}"})
    feeder = Feeder.objects.create(
        region=region, code=code, name=f"Feeder {code}", capacity_kw=Decimal(capacity_kw) if capacity_kw else None
    )
    pks = []
    for n in range(meters):
        premise = Premise.objects.create(
            feeder=feeder, address=f"{n} {code} Road", latitude=Decimal("45.7"), longitude=Decimal("4.8")
        )
        meter = Meter.objects.create(serial=f"FC{code.upper()}{n:03d}", premise=premise, status=Meter.Status.ACTIVE)
        pks.append(meter.pk)
    return feeder, pks


def write_hourly_load(
    meter_pks: Sequence[int], first_day: dt.date, days: int, kw: Callable[[dt.datetime], float], *, scale: float = 1.0
) -> None:
    """Hourly readings for local days [first_day, first_day + days), rolled up into daily rollups."""
    start, end = local_midnight(first_day), local_midnight(first_day + dt.timedelta(days=days))
    received = dt.datetime.now(dt.UTC)
    documents = []
    moment = start
    while moment < end:
        value = round(kw(moment) * scale, 4)
        documents += [
            reading_document(
                meter_pk=pk,
                ts=moment + HOUR,
                received_at=received,
                values={"energy_import_kwh": value, "energy_export_kwh": 0.0},
                interval_s=3600,
            )
            for pk in meter_pks
        ]
        moment += HOUR
    insert_readings(documents)
    rollups.recompute_daily(list(meter_pks), start, end, interval_s=3600)
