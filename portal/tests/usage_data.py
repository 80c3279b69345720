"""Shared by the portal tests: real readings for a consumer's meter, stored and rolled up."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing.models import Bill, BillLineItem
from billing.rollups import rollups_rebuild
from mdms.core.localtime import local_midnight
from mdms.core.models import Meter
from mdms.core.testing import Person
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries import rollups

INTERVAL = dt.timedelta(minutes=15)


def _reading(
    meter: Meter, ts: dt.datetime, received: dt.datetime, import_kwh: float, export_kwh: float, power_w: float
) -> dict[str, Any]:
    """One 15-minute reading as the ingest stores it."""
    return stored.reading_document(
        meter_pk=meter.pk,
        ts=ts,
        received_at=received,
        values={"energy_import_kwh": import_kwh, "energy_export_kwh": export_kwh, "power_w": power_w},
        interval_s=900,
    )


def store_days(
    meter: Meter,
    first_day: dt.date,
    end_day: dt.date,
    *,
    import_kwh: float = 0.25,
    export_kwh: float = 0.0,
    until: dt.datetime | None = None,
    missing: Collection[dt.datetime] = (),
) -> int:
    """15-minute readings for local days [first_day, end_day) up to `until` (default now), rolled up.

    Interval ends in `missing` are left out (gaps).
    """
    until = until or timezone.now()
    received = timezone.now()
    documents = []
    ts = local_midnight(first_day) + INTERVAL
    end = min(local_midnight(end_day), until)
    while ts <= end:
        if ts in missing:
            ts += INTERVAL
            continue
        documents.append(_reading(meter, ts, received, import_kwh, export_kwh, (import_kwh - export_kwh) * 4000))
        ts += INTERVAL
    stored.insert_readings(documents)
    rollups_rebuild(first_day=first_day, end_day=end_day, meter_pks=[meter.pk])
    return len(documents)


def household_kwh(ts: dt.datetime, *, solar: bool) -> tuple[float, float]:
    """A plausible (import, export) kWh for the 15 minutes ending at ts: peaks morning and evening,
    more in winter, and for a solar home the midday sun netted off the load. Deterministic."""
    local = timezone.localtime(ts - INTERVAL)
    hour = local.hour + local.minute / 60
    day_of_year = local.timetuple().tm_yday
    winter = 1 + 0.5 * math.cos(2 * math.pi * (day_of_year - 15) / 365)
    winter *= 1 + 0.08 * (timezone.localdate().year - local.year)  # a little more each year back
    load = 0.08 + 0.12 * math.exp(-((hour - 7.5) ** 2) / 2) + 0.25 * math.exp(-((hour - 19.5) ** 2) / 3)
    load *= winter * (1 + 0.25 * math.sin(day_of_year * 1.7 + hour))
    sun = 0.0
    if solar:
        summer = 1.6 - 0.6 * winter
        sun = (
            max(0.0, math.cos((hour - 13) / 7 * math.pi / 2))
            * 0.45
            * summer
            * (0.7 + 0.3 * math.cos(day_of_year * 2.3))
        )
    net = load - sun
    return (round(max(net, 0.0), 4), round(max(-net, 0.0), 4))


def store_household(
    meter: Meter, first_day: dt.date, end_day: dt.date, *, solar: bool = False, estimated_days: Collection[dt.date] = ()
) -> int:
    """Readings shaped by household_kwh for local days [first_day, end_day) up to now, rolled up.

    On `estimated_days` the evening readings are missing and VEE-style estimates stand in for them.
    """
    now = timezone.now()
    documents = []
    estimates: list[dict[str, object]] = []
    ts = local_midnight(first_day) + INTERVAL
    end = min(local_midnight(end_day), now)
    while ts <= end:
        import_kwh, export_kwh = household_kwh(ts, solar=solar)
        start = timezone.localtime(ts - INTERVAL)
        if start.date() in estimated_days and 17 <= start.hour < 23:
            estimates.append(
                {"meter": meter.pk, "ts": ts, "energy_import_kwh": import_kwh, "energy_export_kwh": export_kwh,
                 "interval_s": 900, "method": "test"}
            )  # fmt: skip
            ts += INTERVAL
            continue
        documents.append(_reading(meter, ts, now, import_kwh, export_kwh, round((import_kwh - export_kwh) * 4000, 1)))
        ts += INTERVAL
    stored.insert_readings(documents)
    rollups.upsert_estimates(estimates)
    rollups_rebuild(first_day=first_day, end_day=end_day, meter_pks=[meter.pk])
    return len(documents)


def make_bill(person: Person, *, period_start: dt.date = dt.date(2026, 9, 1), energy_kwh: str = "130") -> Bill:
    """A current bill of the person's account for the month from period_start: a standing charge of
    10 EUR and the energy at 0.25 EUR/kWh, 5 % of it estimated (130 kWh make 42.50 EUR)."""
    energy = Decimal(energy_kwh)
    amount = (energy * Decimal("0.25")).quantize(Decimal("0.01"))
    bill = Bill.objects.create(
        account=person.account,
        period_start=period_start,
        period_end=(period_start + dt.timedelta(days=32)).replace(day=1),
        currency="EUR",
        import_kwh=energy,
        export_kwh=Decimal("0"),
        net_kwh=energy,
        estimated_kwh=energy * Decimal("0.05"),
        estimated_share=Decimal("0.05"),
        multiplier=Decimal("1"),
        determinants={},
        total=Decimal("10.00") + amount,
    )
    BillLineItem.objects.bulk_create(
        [
            BillLineItem(bill=bill, position=1, code="fixed", description="Standing charge", quantity=Decimal("1"),
                         unit="month", rate=Decimal("10"), amount=Decimal("10.00")),
            BillLineItem(bill=bill, position=2, code="energy", description="Energy", quantity=energy,
                         unit="kWh", rate=Decimal("0.25"), amount=amount, estimated=True),
        ]
    )  # fmt: skip
    return bill
