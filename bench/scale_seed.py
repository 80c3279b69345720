"""The 100,000-meter utility `bench/scale.py` measures: seeded in bulk, kept between runs.

PostgreSQL: 5 regions x 20 feeders, 100,000 premises (scattered around their feeder), each with a
customer (a login), an account (bill-cycle days 1..28 in turn) and an active meter, written with
bulk_create in chunks of 5,000.

MongoDB, through the real storage code, never a side door:
- raw 15-minute readings from yesterday's local midnight up to now (a complete day and today so
  far), written with `readings.insert_readings` in batches; 1 % of the meters sag under the
  EN 50160 band for three intervals, 0.2 % fall silent three hours before the seed ends;
- the days they touch rolled up by `billing.rollups.rollups_rebuild` (the backfill) for one meter of
  each load class (meters whose readings are the same energies) and every silent meter, then copied
  by MongoDB to the other meters of the class; a random sample of 60 copies is recomputed for real
  and must come out identical (roll_up). Rolling up all 15 million readings took over 40 minutes
  on this shared machine, for documents that are equal by construction;
- the other days of the window (the billing period of the run date and the last 30 days), 30 or
  so, copied by MongoDB from yesterday's real rollup documents of the same meter, with the day's
  own `_id`, `day`, `start`, `max_demand_at` and the energies scaled by a factor per meter-day
  (re-rounded, totals re-summed): the shape is the real rollup's, field for field, because the
  documents are the real rollup's. Recomputing 30 days from raw readings would mean writing
  288 million readings first (80 minutes of insert on this machine);
- anomalies found by the real detection (`monitoring.services.anomalies_detect`) on the meters
  with sags, and `meter_last_seen` advanced by `anomalies.last_seen_advance` as the outage
  follower does; the outage follower's clock moved with `stream_clock_advance`.

A marker document (collection `bench_markers`, this benchmark's own) records what was seeded. A
later run keeps everything when the marker matches the meters in PostgreSQL and only tops the
readings up to its own now (the meters went on reporting meanwhile), recomputing the days touched;
after a day or more away it seeds the raw day again.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import transaction

from bench.common import progress
from billing.determinants import cycle_period
from billing.rollups import rollups_rebuild
from mdms.core import timeseries
from mdms.core.localtime import each_day, hours_in_day, local_day, local_midnight, local_zone
from mdms.core.models import Account, Customer, Feeder, Meter, MeterInstallation, Premise, Region, Tariff
from mdms.core.roles import Role
from mdms.core.timeseries import anomalies as monitoring_store
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries.rollups import KWH_DECIMALS, ROLLUPS_DAILY
from monitoring.models import IncidentMeter, OutageIncident
from monitoring.services import anomalies_detect

METERS = 100_000
REGIONS = 5
FEEDERS_PER_REGION = 20
PREFIX = "SCALE"
CHUNK = 5_000
SEED_VERSION = 3
MARKER_ID = "scale"
ROLLUP_WINDOW_DAYS = 30
INSERT_BATCH = 20_000
INTERVAL = dt.timedelta(minutes=15)
# 1 % of the meters sag below the EN 50160 band for three intervals (the anomaly list's rows),
# 0.2 % stop reporting three hours before the seed ends (the silent meters).
SAG_MODULUS, SAG_REMAINDER = 100, 7
SILENT_MODULUS, SILENT_REMAINDER = 500, 3
SILENT_BEFORE = dt.timedelta(hours=3)
# Outage incidents in the outage list: closed ones over the month, a few still open.
INCIDENTS_CLOSED = 600
INCIDENTS_OPEN = 8
REGION_CENTRES = [(48.85, 2.35), (45.76, 4.84), (43.60, 1.44), (47.22, -1.55), (48.58, 7.75)]


def markers() -> Any:
    # This benchmark's own bookkeeping, next to the data it describes (a dropped database drops it too).
    return timeseries.db()["bench_markers"]


@dataclass(frozen=True)
class Seeded:
    meter_pks: list[int]  # by serial
    run_date: dt.date  # the bill-cycle date whose period the rollups cover
    first_day: dt.date  # the first rolled-up day
    template_day: dt.date  # the complete day rolled up from raw readings (yesterday when seeded)
    readings_through: dt.datetime
    setup_s: dict[str, float]


def _cycle_day(n: int) -> int:
    return n % 28 + 1


def run_date_for(today: dt.date) -> dt.date:
    """The latest bill-cycle date (day 1..28) up to today: its period ends at most yesterday."""
    day = today
    while day.day > 28:
        day -= dt.timedelta(days=1)
    return day


def _grid() -> list[Feeder]:
    feeders = []
    for r in range(REGIONS):
        region, _ = Region.objects.get_or_create(code=f"scale-r{r}", defaults={"name": f"Scale region {r}"})
        for f in range(FEEDERS_PER_REGION):
            feeder, _ = Feeder.objects.get_or_create(
                code=f"scale-r{r}-f{f:02d}",
                defaults={"region": region, "name": f"Scale {r}/{f}", "capacity_kw": Decimal("1500")},
            )
            feeders.append(feeder)
    return feeders


def _feeder_centre(index: int) -> tuple[float, float]:
    lat, lon = REGION_CENTRES[index // FEEDERS_PER_REGION]
    angle = (index % FEEDERS_PER_REGION) * 2 * math.pi / FEEDERS_PER_REGION
    return lat + 0.25 * math.sin(angle), lon + 0.35 * math.cos(angle)


def ensure_master_data() -> float:
    """100,000 consumers with premise, account and meter (only those missing are created); seconds."""
    started = time.perf_counter()
    feeders = _grid()
    tariff, _ = Tariff.objects.get_or_create(
        code="scale-flat",
        defaults={"name": "Scale flat", "energy_rate_per_kwh": Decimal("0.2"), "fixed_monthly_charge": Decimal("9")},
    )
    group = Group.objects.get(name=Role.CONSUMER)
    password = make_password("scale-pw")
    existing = Meter.objects.filter(serial__startswith=PREFIX).count()
    rng = random.Random(21)
    for low in range(existing + 1, METERS + 1, CHUNK):
        numbers = range(low, min(METERS, low + CHUNK - 1) + 1)
        with transaction.atomic():
            users = User.objects.bulk_create([User(username=f"scale-{n}", password=password) for n in numbers])
            User.groups.through.objects.bulk_create(
                [User.groups.through(user_id=u.pk, group_id=group.pk) for u in users]
            )
            customers = Customer.objects.bulk_create([Customer(name=f"Scale customer {n}", user=u)
                                                      for n, u in zip(numbers, users, strict=True)])  # fmt: skip
            premises = []
            for n in numbers:
                index = n % len(feeders)
                lat, lon = _feeder_centre(index)
                premises.append(
                    Premise(
                        feeder=feeders[index],
                        address=f"{n} Scale Street",
                        city=f"Scale town {index}",
                        latitude=Decimal(f"{lat + rng.gauss(0, 0.04):.6f}"),
                        longitude=Decimal(f"{lon + rng.gauss(0, 0.05):.6f}"),
                    )
                )
            premises = Premise.objects.bulk_create(premises)
            Account.objects.bulk_create(
                [Account(number=f"SC-{n:06d}", customer=c, premise=p, tariff=tariff, move_in_date=dt.date(2025, 1, 1),
                         bill_cycle_day=_cycle_day(n))
                 for n, c, p in zip(numbers, customers, premises, strict=True)]
            )  # fmt: skip
            meters = Meter.objects.bulk_create(
                [Meter(serial=f"{PREFIX}{n:06d}", premise=p, status=Meter.Status.ACTIVE,
                       install_date=dt.date(2025, 1, 1), has_solar=n % 5 == 0)
                 for n, p in zip(numbers, premises, strict=True)]
            )  # fmt: skip
            MeterInstallation.objects.bulk_create(
                [MeterInstallation(meter=m, premise=p, installed_on=dt.date(2025, 1, 1))
                 for m, p in zip(meters, premises, strict=True)]
            )  # fmt: skip
        progress("scale: master data, consumers", numbers[-1], METERS)
    return time.perf_counter() - started


def meter_pks() -> list[int]:
    return list(Meter.objects.filter(serial__startswith=PREFIX).order_by("serial").values_list("pk", flat=True))


def _floor_interval(moment: dt.datetime) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((moment - epoch) // INTERVAL) * INTERVAL


def _values(pk: int, local_hour: int) -> dict[str, float]:
    """What meter pk measures in an interval of this local hour (a household's evening peak, solar at noon)."""
    evening = 0.25 if 17 <= local_hour <= 21 else 0.1 if 7 <= local_hour <= 8 else 0.0
    energy = round(0.05 + (pk % 13) * 0.01 + evening, 3)
    export = round(0.15 + (pk % 7) * 0.02, 3) if pk % 5 == 0 and 10 <= local_hour <= 15 else 0.0
    sag = pk % SAG_MODULUS == SAG_REMAINDER and local_hour == 19
    voltage = 190.0 if sag else 229.0 + (pk % 11) * 0.4
    power = energy * 4000
    return {
        "energy_import_kwh": energy,
        "energy_export_kwh": export,
        "power_w": power,
        "voltage_v": voltage,
        "current_a": round(power / voltage, 2),
        "frequency_hz": 50.0,
        "power_factor": 0.97,
    }


def _register_at(pk: int, ts: dt.datetime) -> float:
    # A register that grows about 10 kWh a day since 2025 (the readings add their own energy on top).
    return round(1_000 + pk % 997 + (ts - dt.datetime(2025, 1, 1, tzinfo=dt.UTC)).total_seconds() / 8640, 3)


def write_readings(pks: Sequence[int], start: dt.datetime, end: dt.datetime) -> int:
    """Every live meter's readings with start < ts <= end (silent meters stop before `end`); how many."""
    ends = []
    ts = start + INTERVAL
    while ts <= end:
        ends.append(ts)
        ts += INTERVAL
    if not ends:
        return 0
    zone = local_zone()
    hours = [(t - INTERVAL).astimezone(zone).hour for t in ends]
    silent_from = end - SILENT_BEFORE
    received = dt.datetime.now(dt.UTC)
    per_batch = max(1, INSERT_BATCH // len(ends))
    batches = [list(pks[i : i + per_batch]) for i in range(0, len(pks), per_batch)]

    def insert(batch: list[int]) -> tuple[int, int, dict[int, dt.datetime]]:
        documents = []
        newest: dict[int, dt.datetime] = {}
        for pk in batch:
            silent = pk % SILENT_MODULUS == SILENT_REMAINDER
            register = _register_at(pk, ends[0])
            # The document of each kind of hour is made once by the real builder, then copied per interval:
            # the same fields, a fraction of the cost (the seed writes 15 million of them).
            kinds: dict[int, dict[str, Any]] = {}
            for t, hour in zip(ends, hours, strict=True):
                if silent and t > silent_from:
                    break
                kind = kinds.get(hour)
                if kind is None:
                    kind = kinds[hour] = stored.reading_document(
                        meter_pk=pk, ts=t, received_at=received, values=_values(pk, hour), interval_s=900
                    )
                register = round(register + kind["energy_import_kwh"], 3)
                documents.append({**kind, "ts": t, "register_import_kwh": register})
                newest[pk] = t
        stored.insert_readings(documents)
        return len(batch), len(documents), newest

    done = written = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        for meters, count, newest in pool.map(insert, batches):
            monitoring_store.last_seen_advance(newest)
            done += meters
            written += count
            progress(f"scale: readings {start:%d %b %H:%M}-{end:%H:%M}, meters", done, len(pks))
    return written


_ARRAYS = ("import_kwh", "export_kwh", "estimated_import_kwh", "estimated_export_kwh")
_TOTALS = {
    "import_kwh": "total_import_kwh",
    "export_kwh": "total_export_kwh",
    "estimated_import_kwh": "total_estimated_import_kwh",
    "estimated_export_kwh": "total_estimated_export_kwh",
}


def _insert_documents(documents: Sequence[dict[str, Any]], label: str) -> None:
    """insert_many in batches on two threads ($merge upserts one document at a time: 100 a second here)."""
    collection = timeseries.collection(ROLLUPS_DAILY)
    batches = [documents[i : i + 10_000] for i in range(0, len(documents), 10_000)]
    done = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        for count in pool.map(lambda batch: len(collection.insert_many(batch, ordered=False).inserted_ids), batches):
            done += count
            progress(label, done, len(documents))


def _class_sources(pks: Sequence[int]) -> dict[tuple[int, int], list[int]]:
    classes: dict[tuple[int, int], list[int]] = {}
    for pk in pks:
        classes.setdefault(_load_class(pk), []).append(pk)
    return classes


def copy_rollup_days(pks: Sequence[int], template: dt.date, days: Sequence[dt.date]) -> None:
    """The real rollup documents of `template`, as the documents of `days` (see the module docstring)."""
    collection = timeseries.collection(ROLLUPS_DAILY)
    classes = _class_sources(pks)
    sources = {
        _load_class(doc["meter"]): doc
        for doc in collection.find({"meter": {"$in": [m[0] for m in classes.values()]}, "day": template.isoformat()})
    }
    template_start = local_midnight(template)
    stamp = dt.datetime.now(dt.UTC)
    collection.delete_many(
        {"meter": {"$gte": min(pks), "$lte": max(pks)}, "day": {"$in": [d.isoformat() for d in days]}}
    )
    for index, day in enumerate(days, start=1):
        if hours_in_day(day) != hours_in_day(template):
            raise RuntimeError(f"{day} is not as long as {template}: the seed copies only days of the same length")
        start = local_midnight(day)
        shift = start - template_start
        scaled: dict[tuple[tuple[int, int], int], dict[str, Any]] = {}
        documents = []
        for key, members in classes.items():
            source = sources[key]
            for pk in members:
                variant = (pk + day.toordinal() * 7) % 11  # a factor 0.75 .. 1.25 per meter and day
                body = scaled.get((key, variant))
                if body is None:
                    factor = 0.75 + variant / 20
                    body = {name: [round(v * factor, KWH_DECIMALS) for v in source[name]] for name in _ARRAYS}
                    body.update({_TOTALS[name]: round(sum(body[name]), KWH_DECIMALS) for name in _ARRAYS})
                    body["max_demand_kw"] = round(source["max_demand_kw"] * factor, KWH_DECIMALS)
                    scaled[(key, variant)] = body
                documents.append({**source, **body, "_id": f"{pk}:{day.isoformat()}", "meter": pk,
                                  "day": day.isoformat(), "start": start,
                                  "max_demand_at": source["max_demand_at"] + shift, "computed_at": stamp})  # fmt: skip
        _insert_documents(documents, f"scale: rollups of {day} ({index}/{len(days)}) copied from {template}")


def _load_class(pk: int) -> tuple[int, int]:
    """What a meter's energies depend on in _values (its voltage aside, which no rollup reads)."""
    return pk % 13, pk % 7 if pk % 5 == 0 else -1


VERIFY_SAMPLE = 60


def roll_up(pks: Sequence[int], first_day: dt.date, end_day: dt.date, silent: set[int]) -> int:
    """Daily rollups of [first_day, end_day) for every meter; returns how many were computed for real.

    Meters of one load class (_load_class) stored the very same readings, so their rollups are the
    same document but for the meter: `rollups_rebuild` computes one meter per class (and every
    silent meter, whose day stopped early) for real, and MongoDB copies each to the others of its
    class. Then a random sample of the copies is recomputed for real by `rollups_rebuild` and must
    come out identical (computed_at aside), or the seed stops.
    """
    # A class's source is a meter that reported all along (a silent meter's day stops early).
    classes = {key: sorted(members, key=lambda pk: pk in silent) for key, members in _class_sources(pks).items()}
    sources = [members[0] for members in classes.values()]
    real = sorted(set(sources) | silent)
    rollups_rebuild(first_day=first_day, end_day=end_day, meter_pks=real,
                    progress=lambda n: print(f"scale: {n} day(s) rolled up for real for {len(real):,} meters"))  # fmt: skip
    targets = [[pk for pk in members[1:] if pk not in silent] for members in classes.values()]
    days = [d.isoformat() for d in each_day(first_day, end_day)]
    collection = timeseries.collection(ROLLUPS_DAILY)
    copies = [pk for group in targets for pk in group]
    for low in range(0, len(copies), 10_000):
        collection.delete_many({"meter": {"$in": copies[low : low + 10_000]}, "day": {"$in": days}})
    documents = []
    for source_doc in collection.find({"meter": {"$in": sources}, "day": {"$in": days}}):
        for pk in targets[sources.index(source_doc["meter"])]:
            documents.append({**source_doc, "_id": f"{pk}:{source_doc['day']}", "meter": pk})
    _insert_documents(documents, "scale: rollups copied within load classes")
    sample = random.Random(first_day.toordinal()).sample([pk for group in targets for pk in group], VERIFY_SAMPLE)

    def sampled() -> list[dict[str, Any]]:
        found = collection.find({"meter": {"$in": sample}, "day": {"$in": days}}, {"computed_at": 0})
        return sorted(found, key=lambda d: d["_id"])

    copied = sampled()
    rollups_rebuild(first_day=first_day, end_day=end_day, meter_pks=sorted(sample))
    if sampled() != copied or len(copied) != len(sample) * len(days):
        raise RuntimeError("a copied rollup differs from the real rollup of the same meter: the load classes are wrong")
    print(f"scale: {VERIFY_SAMPLE} copied meters recomputed for real: identical")
    return len(real) + VERIFY_SAMPLE


def _incidents(pks: Sequence[int], now: dt.datetime) -> None:
    """Outage incidents over the last month (closed) and a few open ones, with their meters."""
    IncidentMeter.objects.filter(meter_id__in=pks).delete()
    OutageIncident.objects.filter(feeder__code__startswith="scale-").delete()
    feeders = list(Feeder.objects.filter(code__startswith="scale-").order_by("code"))
    by_feeder: dict[int, list[int]] = {}
    for pk, feeder_pk in Meter.objects.filter(pk__in=pks).values_list("pk", "premise__feeder_id"):
        by_feeder.setdefault(feeder_pk, []).append(pk)
    rng = random.Random(5)
    incidents, members = [], []
    for k in range(INCIDENTS_CLOSED + INCIDENTS_OPEN):
        feeder = feeders[k % len(feeders)]
        is_open = k >= INCIDENTS_CLOSED
        started = now - (dt.timedelta(minutes=20 + k) if is_open else dt.timedelta(hours=rng.uniform(4, 24 * 30)))
        meters = rng.sample(by_feeder[feeder.pk], rng.randint(3, 60))
        ended = None if is_open else started + dt.timedelta(minutes=rng.randint(2, 240))
        incident = OutageIncident(
            feeder=feeder,
            region_id=feeder.region_id,
            status=OutageIncident.Status.OPEN if is_open else OutageIncident.Status.CLOSED,
            started_at=started,
            ended_at=ended,
            duration_class="" if is_open else OutageIncident.Duration.SUSTAINED,
            affected_meters=len(meters),
            affected_customers=len(meters),
        )
        incidents.append(incident)
        members.append((meters, started, ended))
    OutageIncident.objects.bulk_create(incidents)
    IncidentMeter.objects.bulk_create(
        [
            IncidentMeter(incident=incident, meter_id=pk, source=IncidentMeter.Source.LAST_GASP, out_since=started,
                          restored_at=ended, restored_by="power_on" if ended else "")
            for incident, (meters, started, ended) in zip(incidents, members, strict=True)
            for pk in meters
        ],
        batch_size=5_000,
    )  # fmt: skip


def ensure_seeded(*, now: dt.datetime | None = None) -> Seeded:
    """Seed what is missing or stale; returns what the measurements need."""
    timeseries.ensure_collections()
    setup: dict[str, float] = {}
    setup["master_data_s"] = ensure_master_data()
    pks = meter_pks()
    now = _floor_interval(now or dt.datetime.now(dt.UTC))
    today = local_day(now)
    yesterday = today - dt.timedelta(days=1)
    run_date = run_date_for(today)
    period_start, _period_end = cycle_period(run_date)
    first_day = min(period_start, today - dt.timedelta(days=ROLLUP_WINDOW_DAYS))
    expected = {"version": SEED_VERSION, "meters": len(pks), "first_pk": pks[0], "last_pk": pks[-1]}
    marker = markers().find_one({"_id": MARKER_ID}) or {}
    fresh = (
        all(marker.get(key) == value for key, value in expected.items())
        and marker.get("template_day") == yesterday.isoformat()
        and "stage" not in marker
    )
    started = time.perf_counter()
    silent = {pk for pk in pks if pk % SILENT_MODULUS == SILENT_REMAINDER}
    if fresh:
        through = marker["readings_through"]
        written = write_readings([pk for pk in pks if pk not in silent], through, now)
        touched = [local_day(through), today] if written else []
        print(f"scale: seed kept from {marker['seeded_at']:%Y-%m-%d %H:%M}; {written:,} readings topped up to now")
    elif marker.get("stage") == "readings" and marker.get("template_day") == yesterday.isoformat():
        # A seed stopped after its readings: top them up to now (the copies a stopped top-up stored are
        # duplicates, harmless by design) and go on from the rollups.
        written = write_readings([pk for pk in pks if pk not in silent], marker["readings_through"], now)
        touched = [yesterday, today]
        print(f"scale: readings kept from a seed stopped after them, {written:,} topped up to now; going on")
    else:
        print("scale: seeding the readings, rollups and anomalies (about 15 minutes on 2 busy cores)")
        readings = timeseries.collection(timeseries.READINGS)
        for low in range(0, len(pks), 10_000):  # a time series deletes by its metaField only
            readings.delete_many({"meter": {"$in": pks[low : low + 10_000]}})
        timeseries.collection(ROLLUPS_DAILY).delete_many({"meter": {"$gte": pks[0], "$lte": pks[-1]}})
        written = write_readings(pks, local_midnight(yesterday), now)
        touched = [yesterday, today]
        markers().replace_one(
            {"_id": MARKER_ID},
            {**expected, "stage": "readings", "template_day": yesterday.isoformat(), "readings_through": now},
            upsert=True,
        )
    setup["readings_s"] = time.perf_counter() - started
    setup["readings_written"] = written
    if touched:
        began = time.perf_counter()
        setup["rollups_real_meters"] = roll_up(pks, min(touched), max(touched) + dt.timedelta(days=1), silent)
        setup["rollups_s"] = time.perf_counter() - began
    if not fresh:
        began = time.perf_counter()
        copy_rollup_days(pks, yesterday, list(each_day(first_day, yesterday)))
        setup["rollups_copy_s"] = time.perf_counter() - began
        began = time.perf_counter()
        sagging = [pk for pk in pks if pk % SAG_MODULUS == SAG_REMAINDER]
        for low in range(0, len(sagging), 100):
            anomalies_detect(ranges=[(sagging[low : low + 100], local_midnight(yesterday), now)])
            progress("scale: detection over the sagging meters", min(low + 100, len(sagging)), len(sagging))
        setup["detect_s"] = time.perf_counter() - began
        _incidents(pks, now)
        markers().replace_one(
            {"_id": MARKER_ID},
            {**expected, "template_day": yesterday.isoformat(), "first_day": first_day.isoformat(),
             "seeded_at": dt.datetime.now(dt.UTC), "readings_through": now},
            upsert=True,
        )  # fmt: skip
    markers().update_one({"_id": MARKER_ID}, {"$set": {"readings_through": now}})
    # The outage follower's clock: it has applied everything up to now (nothing is behind).
    monitoring_store.stream_clock_advance(now, at=dt.datetime.now(dt.UTC))
    stored_first = marker.get("first_day") if fresh else first_day.isoformat()
    return Seeded(
        meter_pks=pks,
        run_date=run_date,
        first_day=dt.date.fromisoformat(str(stored_first)),
        template_day=yesterday,
        readings_through=now,
        setup_s=setup,
    )
