"""The monthly billing run for 1,000 and 10,000 accounts over a month of 15-minute data.

Set-up (not part of the billing timing): 10,000 accounts with a meter each, 30 days of 15-minute
readings per meter (10,000 x 2,880 = 28.8 million readings) written with insert_many (kept in the
bench databases and skipped when a previous run left them complete), and the daily rollups of all
10,000 meters rebuilt with billing.rollups.rollups_rebuild on every run, timed and reported.

Timed: bill_run_create + bill_run_execute for the 1st of the next month, from the accounts query
to the last bill and line item written, for 1,000 accounts and then for 10,000. Bills from an
earlier timing are deleted before each timing, so both bill every account.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from bench.common import progress, save_results, save_section
from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill, BillingRun
from billing.rollups import rollups_rebuild
from mdms.core.models import Account, Customer, Feeder, Meter, MeterInstallation, Premise, Region, Tariff
from mdms.core.timeseries import READINGS, ROLLUPS_DAILY, collection
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries import rollups as rollup_store

ACCOUNTS = 10_000
SMALL = 1_000
FIRST_DAY = dt.date(2026, 9, 1)  # 30 days, no DST change: 2,880 intervals a meter
END_DAY = dt.date(2026, 10, 1)
RUN_DATE = END_DAY
PREFIX = "BILL"
INSERT_BATCH = 20_000
# Load shapes: meters with the same pk % SHAPES have the same daily shape (see _energy).
SHAPES = 13


def ensure_accounts(count: int) -> list[int]:
    """count accounts BILL-000001... each with a premise and an active meter; their meter pks."""
    region, _ = Region.objects.get_or_create(code="bench-billing", defaults={"name": "Bench billing"})
    feeder, _ = Feeder.objects.get_or_create(code="bench-billing-f1", defaults={"region": region, "name": "Bench"})
    tariff, _ = Tariff.objects.get_or_create(
        code="bench-flat",
        defaults={"name": "Bench flat", "energy_rate_per_kwh": Decimal("0.2"), "fixed_monthly_charge": Decimal("9")},
    )
    existing = Account.objects.filter(number__startswith=f"{PREFIX}-").count()
    if existing < count:
        numbers = range(existing + 1, count + 1)
        with transaction.atomic():
            premises = Premise.objects.bulk_create(
                [Premise(feeder=feeder, address=f"{n} Bench Road", latitude=Decimal("45.7"), longitude=Decimal("4.8"))
                 for n in numbers], batch_size=2000,
            )  # fmt: skip
            customers = Customer.objects.bulk_create([Customer(name=f"Bench {n}") for n in numbers], batch_size=2000)
            meters = Meter.objects.bulk_create(
                [Meter(serial=f"{PREFIX}{n:06d}", premise=p, status=Meter.Status.ACTIVE, install_date=FIRST_DAY)
                 for n, p in zip(numbers, premises, strict=True)], batch_size=2000,
            )  # fmt: skip
            MeterInstallation.objects.bulk_create(
                [MeterInstallation(meter=m, premise=p, installed_on=dt.date(2026, 1, 1))
                 for m, p in zip(meters, premises, strict=True)], batch_size=2000,
            )  # fmt: skip
            Account.objects.bulk_create(
                [Account(number=f"{PREFIX}-{n:06d}", customer=c, premise=p, tariff=tariff,
                         move_in_date=dt.date(2026, 1, 1), bill_cycle_day=1)
                 for n, c, p in zip(numbers, customers, premises, strict=True)], batch_size=2000,
            )  # fmt: skip
    return list(Meter.objects.filter(serial__startswith=PREFIX).order_by("serial").values_list("pk", flat=True)[:count])


def _interval_ends() -> list[dt.datetime]:
    zone = ZoneInfo(settings.TIME_ZONE)
    start = dt.datetime.combine(FIRST_DAY, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(END_DAY, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    step = dt.timedelta(minutes=15)
    return [start + step * k for k in range(1, int((end - start) / step) + 1)]


def _energy(meter_pk: int, k: int) -> float:
    # A daily shape (more in the evening) that differs by meter through pk % SHAPES, in Wh steps.
    return round(0.05 + ((k % 96) // 4 % 24 >= 17) * 0.3 + (meter_pk % SHAPES) * 0.01, 3)


def month_start_utc() -> dt.datetime:
    return dt.datetime.combine(FIRST_DAY, dt.time(), tzinfo=ZoneInfo(settings.TIME_ZONE)).astimezone(dt.UTC)


def month_end_utc() -> dt.datetime:
    return dt.datetime.combine(END_DAY, dt.time(), tzinfo=ZoneInfo(settings.TIME_ZONE)).astimezone(dt.UTC)


def rollups_complete(meter_pks: list[int]) -> bool:
    days = rollup_store.daily_documents(meter_pks, FIRST_DAY, END_DAY, fields=("intervals",))
    return len(days) == len(meter_pks) * (END_DAY - FIRST_DAY).days and all(d["intervals"] == 96 for d in days)


def load_readings(meter_pks: list[int]) -> float:
    """Insert every reading of the month (per meter in time order), in parallel batches; seconds."""
    started = time.perf_counter()
    ends = _interval_ends()
    received = dt.datetime.now(tz=dt.UTC)
    readings = collection(READINGS)
    collection(READINGS).delete_many({"meter": {"$in": meter_pks}})

    def insert(pks: list[int]) -> int:
        documents = [
            {"meter": pk, "ts": ts, "received_at": received, "energy_import_kwh": _energy(pk, k),
             "energy_export_kwh": 0.0, "interval_s": 900}
            for pk in pks for k, ts in enumerate(ends)
        ]  # fmt: skip
        readings.insert_many(documents, ordered=False)
        return len(pks)

    per_batch = max(1, INSERT_BATCH // len(ends))
    batches = [meter_pks[i : i + per_batch] for i in range(0, len(meter_pks), per_batch)]
    done = 0
    with ThreadPoolExecutor(max_workers=3) as pool:
        for n in pool.map(insert, batches):
            done += n
            progress("bench billing: readings of meters", done, len(meter_pks))
    return time.perf_counter() - started


def time_run(accounts: int) -> tuple[float, BillingRun]:
    Bill.objects.filter(account__number__startswith=f"{PREFIX}-").delete()
    BillingRun.objects.filter(run_date=RUN_DATE).delete()
    # Only the first `accounts` accounts are due on the run date; the others wait on another day.
    bench_accounts = Account.objects.filter(number__startswith=f"{PREFIX}-")
    bench_accounts.update(bill_cycle_day=1)
    bench_accounts.filter(number__gt=f"{PREFIX}-{accounts:06d}").update(bill_cycle_day=2)
    Account.objects.exclude(number__startswith=f"{PREFIX}-").filter(bill_cycle_day=1).update(bill_cycle_day=3)
    started = time.perf_counter()
    run = bill_run_execute(
        run=bill_run_create(run_date=RUN_DATE),
        on_progress=lambda r: progress(f"bench billing: {accounts:,} accounts", r.done, r.total),
    )
    elapsed = time.perf_counter() - started
    if run.bills_created != accounts or run.failed:
        raise RuntimeError(f"the run billed {run.bills_created} of {accounts} accounts; errors {run.errors[:3]}")
    return elapsed, run


def readings_loaded(meter_pks: list[int]) -> bool:
    """The first and the last meter have the whole month (they are loaded first and last)."""
    ends = len(_interval_ends())
    return all(
        # Readings are stamped with their interval's end: the month's last one is at its end.
        stored.count_distinct_readings([pk], month_start_utc(), month_end_utc() + dt.timedelta(seconds=1)) == ends
        for pk in (meter_pks[0], meter_pks[-1])
    )


def build_rollups(meter_pks: list[int]) -> float:
    """Daily rollups of the month for every meter, rebuilt for real with rollups_rebuild; seconds."""
    started = time.perf_counter()
    days = (END_DAY - FIRST_DAY).days
    done = [0]

    def days_done(n: int) -> None:
        done[0] += n
        progress("bench billing: rollup days", done[0], days)

    collection(ROLLUPS_DAILY).delete_many({"meter": {"$in": meter_pks}})
    rollups_rebuild(first_day=FIRST_DAY, end_day=END_DAY, meter_pks=meter_pks, progress=days_done)
    return time.perf_counter() - started


def run() -> dict[str, Any]:
    meter_pks = ensure_accounts(ACCOUNTS)
    setup: dict[str, float] = {}
    if not readings_loaded(meter_pks):
        setup["load_s"] = load_readings(meter_pks)
    # Rebuilt every run (timed on its own, not part of the billing run): the rebuild is a figure too.
    setup["rollups_s"] = build_rollups(meter_pks)
    if not rollups_complete(meter_pks):
        raise RuntimeError("the rollups of the bench month are incomplete after the rebuild")
    small_s, _ = time_run(SMALL)
    large_s, large_run = time_run(ACCOUNTS)
    sample = Bill.objects.filter(run=large_run).order_by("account__number").first()
    assert sample is not None
    readings_total = ACCOUNTS * len(_interval_ends())
    results = {
        "billing_1k_accounts_s": round(small_s, 2),
        "billing_10k_accounts_s": round(large_s, 2),
        "billing_rollup_rebuild_s": round(setup["rollups_s"], 1),
        "billing_rollup_rebuild_readings_per_s": round(readings_total / setup["rollups_s"]),
    }
    save_results(results)
    growth = large_s / small_s if small_s else float("nan")
    setup_lines = [
        f"- set-up (not timed): {readings_total:,} readings inserted in {setup['load_s']:.0f} s"
        if "load_s" in setup else f"- set-up (not timed): {readings_total:,} readings kept from an earlier run",
        f"- daily rollups of all {ACCOUNTS:,} meters rebuilt for real with `rollups_rebuild` in "
        f"{setup['rollups_s']:.0f} s ({readings_total / setup['rollups_s']:,.0f} readings/s; timed apart from the run; "
        f"load average {os.getloadavg()[0]:.2f} at the end)",
    ]  # fmt: skip
    save_section(
        "30-billing",
        f"""
## Billing: the monthly run

One month (September 2026, 30 days) of 15-minute readings for {ACCOUNTS:,} meters, {readings_total:,}
readings in MongoDB, rolled up per meter and local day. Timed: `bill_run_create` + `bill_run_execute`
for the 1st of October, from the accounts query to the last bill and line item written (flat tariff,
fixed charge and energy; determinants with maximum demand, estimated share and missing intervals).

| accounts | run (s) | bills/s |
|---:|---:|---:|
| {SMALL:,} | {small_s:.2f} | {SMALL / small_s:,.0f} |
| {ACCOUNTS:,} | {large_s:.2f} | {ACCOUNTS / large_s:,.0f} |

- growth from 1k to 10k accounts: x{growth:.1f} for x10 accounts (linear would be x10.0)
- requirement: 10,000 accounts within 60 s: {"met" if large_s <= 60 else "NOT met"}
- sample bill {sample.account.number}: {sample.import_kwh} kWh, total {sample.total} {sample.currency}
{chr(10).join(setup_lines)}
""",
    )
    return {**results, **{f"setup_{k}": round(v, 1) for k, v in setup.items()}}
