"""Shared by the bill tests: store a stretch of 15-minute readings for real, and roll it up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings

from billing.rollups import rollups_rebuild
from mdms.core.models import Tariff, TouPeriod
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as stored

INTERVAL = dt.timedelta(minutes=15)


def local(day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(settings.TIME_ZONE))


def interval_ends(first_day: dt.date, end_day: dt.date) -> list[dt.datetime]:
    """The ends (UTC) of every 15-minute interval starting in local [first_day, end_day), DST-safe."""
    start = local(first_day).astimezone(dt.UTC)
    end = local(end_day).astimezone(dt.UTC)
    ends = []
    ts = start + INTERVAL
    while ts <= end:
        ends.append(ts)
        ts += INTERVAL
    return ends


def constant(kwh: float) -> Callable[[dt.datetime], float]:
    """The same energy in every interval."""
    return lambda ts: kwh


def readings(
    meter_pk: int,
    first_day: dt.date,
    end_day: dt.date,
    energy: Callable[[dt.datetime], float | None] = lambda ts: 0.25,
    export: Callable[[dt.datetime], float] = lambda ts: 0.0,
) -> list[dict[str, Any]]:
    """Reading documents; energy(ts) None leaves the interval out (a gap)."""
    now = dt.datetime.now(tz=dt.UTC)
    documents = []
    for ts in interval_ends(first_day, end_day):
        value = energy(ts)
        if value is None:
            continue
        documents.append(
            stored.reading_document(
                meter_pk=meter_pk,
                ts=ts,
                received_at=now,
                values={"energy_import_kwh": value, "energy_export_kwh": export(ts)},
                interval_s=900,
            )
        )
    return documents


def store_and_roll_up(
    documents: Iterable[dict[str, Any]], meter_pks: list[int], first_day: dt.date, end_day: dt.date
) -> None:
    stored.insert_readings(list(documents))
    rollups_rebuild(first_day=first_day, end_day=end_day, meter_pks=meter_pks)


def make_tou_tariff() -> Tariff:
    """Weekdays: peak 08-20 at 0.30, off-peak 20-08 at 0.15. Weekends and holidays: 0.10 all day."""
    tariff, created = Tariff.objects.get_or_create(
        code="tou-test",
        defaults={"name": "TOU test", "energy_rate_per_kwh": None, "fixed_monthly_charge": Decimal("12")},
    )
    if created:
        TouPeriod.objects.bulk_create(
            [
                TouPeriod(tariff=tariff, name="peak", day_type="weekday", start_time=dt.time(8),
                          end_time=dt.time(20), rate_per_kwh=Decimal("0.30")),
                TouPeriod(tariff=tariff, name="off-peak", day_type="weekday", start_time=dt.time(20),
                          end_time=dt.time(8), rate_per_kwh=Decimal("0.15")),
                TouPeriod(tariff=tariff, name="all-day", day_type="weekend", start_time=dt.time(0),
                          end_time=dt.time(0), rate_per_kwh=Decimal("0.10")),
            ]
        )  # fmt: skip
    return tariff


def september_billed_on_the_first(alice: Any, bob: Any) -> list[Any]:
    """Three accounts billed on 1 October with a complete September, and one billed on the 15th."""
    sep, oct_ = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
    carol = make_consumer("carol")
    make_consumer("dan", bill_cycle_day=15)
    people = [alice, bob, carol]
    documents: list[dict[str, Any]] = []
    for n, person in enumerate(people, start=1):  # alice 720 kWh, bob 1,440, carol 2,160
        documents += readings(person.meter.pk, sep, oct_, constant(0.25 * n))
    store_and_roll_up(documents, [p.meter.pk for p in people], sep, oct_)
    return people


def release_in_batches(run_date: dt.date, size: int) -> None:
    """Release the accounts due on run_date in delivery batches of `size` accounts, in number order, as
    if their reads had come in that way (billing.read_fetch), replacing any earlier judgement."""
    from billing.billable_usage import accounts_due
    from billing.models import DeterminantDelivery

    DeterminantDelivery.objects.filter(run_date=run_date).delete()
    accounts = sorted(accounts_due(run_date), key=lambda account: account.number)
    DeterminantDelivery.objects.bulk_create(
        DeterminantDelivery(
            run_date=run_date,
            account=account,
            state=DeterminantDelivery.State.COMPLETE if n < size else DeterminantDelivery.State.FETCHED,
            batch=n // size + 1,
            released_at=dt.datetime.now(tz=dt.UTC),
        )
        for n, account in enumerate(accounts)
    )
