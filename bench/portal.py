"""Consumer dashboard server time with 1,000 meters x 6 months loaded.

Loading: 1,000 consumers (user, customer, premise, account, meter; one shared password hash, in
bulk), their daily rollups for the last 6 months and the same months a year earlier (documents
in exactly the shape billing.rollups writes, generated directly: recomputing them from 35 million
raw readings would measure the rollup job, not the page), and today's raw 15-minute readings
(what the live power chart reads). Then the dashboard is requested in-process with Django's test
Client, each request as a different consumer, DEBUG off as in production; the time measured is
the whole request through middleware, sessions, queries and templates: the server time.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from django.utils import timezone

from bench.common import progress, save_results, save_section
from mdms.core import timeseries
from mdms.core.localtime import hours_in_day, local_midnight
from mdms.core.models import Account, Customer, Meter, Premise
from mdms.core.roles import Role
from mdms.core.testing import make_flat_tariff, make_grid
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries.rollups import ROLLUPS_DAILY
from portal import selectors as portal_selectors

METERS = 1_000
DAYS = 190  # six calendar months back from any day of the month, and a little more
REQUESTS = 400
WARMUP = 20
PREFIX = "PORTALB"


def ensure_consumers(count: int) -> list[tuple[int, int]]:
    """count consumers with a meter each, created in bulk; returns (user pk, meter pk)."""
    existing = Meter.objects.filter(serial__startswith=PREFIX).count()
    if existing < count:
        feeder = make_grid("bench-portal")
        tariff = make_flat_tariff()
        password = make_password("bench-pw")
        numbers = range(existing + 1, count + 1)
        users = User.objects.bulk_create([User(username=f"bench-consumer-{n}", password=password) for n in numbers])
        group = Group.objects.get(name=Role.CONSUMER)
        User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in users])
        customers = Customer.objects.bulk_create([Customer(name=f"Consumer {u.username}", user=u) for u in users])
        premises = Premise.objects.bulk_create(
            [
                Premise(
                    feeder=feeder,
                    address=f"{n} Bench Road",
                    latitude=Decimal("45.7") + Decimal(n % 100) / 1000,
                    longitude=Decimal("4.8") + Decimal(n // 100) / 1000,
                )
                for n in numbers
            ]
        )
        Account.objects.bulk_create(
            [
                Account(number=f"ACC-PB-{n}", customer=c, premise=p, tariff=tariff, move_in_date=dt.date(2024, 1, 1))
                for n, c, p in zip(numbers, customers, premises, strict=True)
            ]
        )
        Meter.objects.bulk_create(
            [
                Meter(serial=f"{PREFIX}{n:05d}", premise=p, status=Meter.Status.ACTIVE, has_solar=n % 3 == 0)
                for n, p in zip(numbers, premises, strict=True)
            ]
        )
    rows = Meter.objects.filter(serial__startswith=PREFIX).order_by("serial")
    return list(rows.values_list("premise__accounts__customer__user_id", "pk"))[:count]


def _day_document(meter_pk: int, day: dt.date, solar: bool, rng: random.Random) -> dict[str, Any]:
    """One meter-day as mdms.core.timeseries.rollups documents it (see its module docstring)."""
    hours = hours_in_day(day)
    imports = [round(rng.uniform(0.1, 1.2), 6) for _ in range(hours)]
    exports = [round(rng.uniform(0.0, 0.8), 6) if solar and 9 <= k <= 16 else 0.0 for k in range(hours)]
    estimated = [imports[k] if rng.random() < 0.01 else 0.0 for k in range(hours)]
    start = local_midnight(day)
    peak = max(range(hours), key=lambda k: imports[k])
    return {
        "_id": f"{meter_pk}:{day.isoformat()}",
        "meter": meter_pk,
        "day": day.isoformat(),
        "start": start,
        "hours": hours,
        "import_kwh": imports,
        "export_kwh": exports,
        "estimated_import_kwh": estimated,
        "total_import_kwh": round(sum(imports), 6),
        "total_export_kwh": round(sum(exports), 6),
        "total_estimated_import_kwh": round(sum(estimated), 6),
        "intervals": hours * 4,
        "estimated_intervals": sum(4 for e in estimated if e),
        "edited_intervals": 0,
        "interval_s": 900,
        "expected_intervals": hours * 4,
        "missing_intervals": 0,
        "max_demand_kw": round(imports[peak] * 4 / 4, 6),
        "max_demand_at": start + dt.timedelta(hours=peak + 1),
        "computed_at": dt.datetime.now(dt.UTC),
    }


def load_rollups(meters: list[tuple[int, int]], today: dt.date) -> int:
    rng = random.Random(6)
    collection = timeseries.collection(ROLLUPS_DAILY)
    meter_pks = [pk for _, pk in meters]
    collection.delete_many({"meter": {"$in": meter_pks}})
    days = [today - dt.timedelta(days=n) for n in range(DAYS)]  # today too: the rollup job keeps it current
    days += [d.replace(year=d.year - 1) for d in days if not (d.month == 2 and d.day == 29)]
    solar = set(Meter.objects.filter(pk__in=meter_pks, has_solar=True).values_list("pk", flat=True))
    written = 0
    for index, meter_pk in enumerate(meter_pks, start=1):
        collection.insert_many([_day_document(meter_pk, d, meter_pk in solar, rng) for d in days], ordered=False)
        written += len(days)
        if index % 100 == 0:
            progress("portal: rollups of meters", index, len(meter_pks))
    return written


def load_today(meters: list[tuple[int, int]], now: dt.datetime) -> int:
    """Today's 15-minute readings of the whole local day, for every meter (the live chart reads them raw).

    The dashboard reads those up to the moment of the request; the ones after it let the run also
    time the read of a complete day, whatever the hour the benchmark runs at.
    """
    meter_pks = [pk for _, pk in meters]
    midnight = local_midnight(timezone.localdate(now))
    day_end = local_midnight(timezone.localdate(now) + dt.timedelta(days=1))
    # A time series deletes by its metaField only; these meters hold nothing but this benchmark's readings.
    timeseries.collection(timeseries.READINGS).delete_many({"meter": {"$in": meter_pks}})
    ends = []
    ts = midnight + dt.timedelta(minutes=15)
    while ts <= day_end:
        ends.append(ts)
        ts += dt.timedelta(minutes=15)
    documents = [
        stored.reading_document(
            meter_pk=pk,
            ts=end,
            received_at=now,
            values={"energy_import_kwh": 0.2, "energy_export_kwh": 0.0, "power_w": 800.0},
            interval_s=900,
        )
        for pk in meter_pks
        for end in ends
    ]
    for start in range(0, len(documents), 20_000):
        stored.insert_readings(documents[start : start + 20_000])
    return len(documents)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run() -> dict[str, Any]:
    timeseries.ensure_collections()
    today = timezone.localdate()
    now = timezone.now()
    meters = ensure_consumers(METERS)
    started = time.perf_counter()
    rollup_days = load_rollups(meters, today)
    readings = load_today(meters, now)
    load_s = time.perf_counter() - started
    print(f"portal: loaded {rollup_days:,} meter-days and {readings:,} readings of today in {load_s:.0f} s")

    users = {u.pk: u for u in User.objects.filter(pk__in=[user_pk for user_pk, _ in meters])}
    rng = random.Random(40)
    sample = [meters[rng.randrange(len(meters))] for _ in range(WARMUP + REQUESTS)]
    timings_ms: list[float] = []
    statuses: set[int] = set()
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        for index, (user_pk, meter_pk) in enumerate(sample):
            client = Client()
            client.force_login(users[user_pk])
            begin = time.perf_counter()
            response = client.get(f"/meters/{meter_pk}/")
            elapsed_ms = (time.perf_counter() - begin) * 1000
            statuses.add(response.status_code)
            if index >= WARMUP:
                timings_ms.append(elapsed_ms)
    if statuses != {200}:
        raise RuntimeError(f"dashboard answered {sorted(statuses)}")

    # The live chart's read at its largest: a whole day of readings (late in the evening).
    day_end = local_midnight(today + dt.timedelta(days=1))
    full_day_ms = []
    for _, meter_pk in sample[:200]:
        meter = Meter.objects.get(pk=meter_pk)
        begin = time.perf_counter()
        points = portal_selectors.today_power(meter, now=day_end - dt.timedelta(seconds=1))
        full_day_ms.append((time.perf_counter() - begin) * 1000)
    readings_so_far = len(portal_selectors.today_power(Meter.objects.get(pk=sample[0][1]), now=now))

    p50 = statistics.median(timings_ms)
    p95 = _percentile(timings_ms, 0.95)
    full_day_p95 = _percentile(full_day_ms, 0.95)
    results = {
        "consumer_dashboard_p50_ms": round(p50, 1),
        "consumer_dashboard_p95_ms": round(p95, 1),
        "consumer_today_power_full_day_p95_ms": round(full_day_p95, 1),
    }
    save_results(results)
    save_section(
        "40-portal",
        f"""
## Consumer dashboard

{METERS:,} consumers with a meter each; {rollup_days:,} daily rollup documents loaded (the last
{DAYS} days up to today and the same days a year earlier: the shape `billing.rollups` writes, generated
directly) and {readings:,} raw readings (a whole local day of 15-minute readings per meter).
{REQUESTS} requests of `/meters/<pk>/`, each as a random consumer (logged in beforehand),
in-process through Django's full stack with DEBUG off, after {WARMUP} warm-up requests. Each page
reads two ranges of daily rollups, today's raw readings up to the request ({readings_so_far} per meter
at the time of this run), and the account and bills from PostgreSQL; no page cache. The live power
chart's read of a complete day ({len(points)} readings) is timed on its own, since the page's share
of it depends on the hour the benchmark runs at.

| figure | value | ceiling |
|---|---|---|
| consumer dashboard p50 | {p50:.1f} ms | |
| consumer dashboard p95 | {p95:.1f} ms | 100 ms |
| today's power, whole day of readings, p95 | {full_day_p95:.1f} ms | |
""",
    )
    return results
