"""Usage reads: the one read API for charts, the REST API and billing.

Conventions, the same for every function here:

- Local time. Days and hours are in settings.TIME_ZONE, DST-safe: a local day has 23, 24 or 25
  hours, and the hours of a day are consecutive real hours from local midnight (on the autumn
  change the repeated local hour appears twice, with different UTC offsets).
- An interval belongs to the period containing its start; an interval's `ts` is its END (UTC in
  storage, returned as aware datetimes). Ranges are half-open: start inclusive, end exclusive.
- Values are effective values: an edit by billing staff wins over the measured reading, which
  wins over a VEE estimate; duplicates are read once (first received wins). `import_kwh` is the
  whole energy including estimates; `estimated_import_kwh` is the part of it that is estimated,
  so estimated energy is always flagged and never silently mixed in.
- Energies are as metered, BEFORE the meter multiplier (billing applies Meter.multiplier).
- Daily and hourly values are read from the daily rollups (`billing.rollups` keeps them current);
  `interval_usage` reads the raw intervals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from billing.models import BillingRun, DeterminantDelivery, IntervalEdit, OutboxDelivery, VeeException
from mdms.core import reading_quality
from mdms.core.localtime import hours_in_day, local_day, local_midnight, local_today, local_zone
from mdms.core.models import Meter
from mdms.core.reading_fields import DEFAULT_INTERVAL_S
from mdms.core.timeseries import readings as readings_store
from mdms.core.timeseries import rollups as store


@dataclass(frozen=True)
class DailyUsage:
    day: dt.date
    import_kwh: float
    export_kwh: float
    estimated_import_kwh: float
    # Intervals of the day (already ended) with no value at all: neither measured, edited nor estimated.
    missing_intervals: int
    max_demand_kw: float | None
    max_demand_at: dt.datetime | None  # local, end of the 15 minutes of maximum demand
    hours: int = 24
    estimated_intervals: int = 0
    edited_intervals: int = 0
    # Intervals per quality code (mdms.core.reading_quality), codes with none left out.
    quality_intervals: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HourlyUsage:
    hour_start: dt.datetime  # aware, local
    import_kwh: float
    export_kwh: float
    estimated_import_kwh: float
    estimated_export_kwh: float = 0.0


@dataclass(frozen=True)
class IntervalUsage:
    ts: dt.datetime  # interval end, aware, local
    import_kwh: float | None
    export_kwh: float | None
    estimated: bool
    edited: bool
    estimate_method: str | None = None  # where estimated: "linear" (interpolated), "profile", ...
    quality: str = reading_quality.VALID.code  # its code (mdms.core.reading_quality)
    source: str = reading_quality.SOURCE_MQTT  # where the value came from (reading_quality.SOURCES)

    @property
    def espi_quality(self) -> int:
        return reading_quality.BY_CODE[self.quality].espi


@dataclass(frozen=True)
class IntervalProvenance:
    """How one billed interval was obtained: its usage, and who or what made its value."""

    usage: IntervalUsage
    edit_id: int | None = None  # billing.models.IntervalEdit of an edited interval
    edited_by: str = ""
    edit_reason: str = ""
    flag_rule: str = ""  # the VEE rule a questionable or validated reading failed
    exception_id: int | None = None  # the exception that holds it


@dataclass(frozen=True)
class DayProfile:
    """One meter-day of the daily rollup as billing reads it in bulk: hourly arrays, not objects.

    Hour k of the day starts at `start + k hours` (start is the UTC instant of local midnight).
    """

    day: dt.date
    start: dt.datetime
    import_kwh: list[float]
    export_kwh: list[float]
    estimated_import_kwh: list[float]
    max_demand_kw: float | None
    max_demand_at: dt.datetime | None  # UTC
    intervals: int
    expected_intervals: int
    estimated_intervals: int


@dataclass(frozen=True)
class BillingTotals:
    """One meter's usage over a billing period, as `billing_totals` returns it."""

    import_kwh: float
    export_kwh: float
    estimated_import_kwh: float
    import_kwh_by_bucket: dict[str, float]  # e.g. time-of-use period name -> kWh; every bucket named
    estimated_export_kwh: float
    estimated_import_kwh_by_bucket: dict[str, float]  # the estimated part of each bucket
    max_demand_kw: float | None
    max_demand_at: dt.datetime | None  # local, end of the 15 minutes of maximum demand
    intervals: int  # with a value (measured, edited or estimated)
    estimated_intervals: int
    expected_intervals: int  # in the period, up to now
    missing_intervals: int  # expected minus intervals: no value at all
    # Intervals per quality code (mdms.core.reading_quality), codes with none left out.
    intervals_by_quality: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisterReading:
    at: dt.datetime  # UTC
    import_kwh: Decimal
    export_kwh: Decimal | None


# How far from the wanted moment a register reading may be (a day of 15-minute readings).
REGISTER_SEARCH = dt.timedelta(days=1)


def register_reading_at(*, meter_pk: int, at: dt.datetime) -> RegisterReading | None:
    """The meter's register reading nearest before `at` (else just after), within REGISTER_SEARCH."""
    row = readings_store.register_reading_near(meter_pk, at, REGISTER_SEARCH)
    if row is None:
        return None
    export = row.get("register_export_kwh")
    return RegisterReading(
        at=row["ts"].astimezone(dt.UTC),
        import_kwh=Decimal(str(row["register_import_kwh"])).quantize(Decimal("0.001")),
        export_kwh=None if export is None else Decimal(str(export)).quantize(Decimal("0.001")),
    )


def _interval_s(meter_pk: int) -> int:
    return int(Meter.objects.values_list("interval_s", flat=True).get(pk=meter_pk))


def _ended_intervals(day_start: dt.datetime, day_end: dt.datetime, interval_s: int, now: dt.datetime) -> int:
    """Intervals of [day_start, day_end) that have ended by now (a day in progress is not missing its future)."""
    ended_until = min(max(now, day_start), day_end)
    return int((ended_until - day_start).total_seconds() // interval_s)


# The rollup fields daily_usage reads: not the hourly arrays, which are most of a document's bytes.
_DAILY_FIELDS = [
    "total_import_kwh",
    "total_export_kwh",
    "total_estimated_import_kwh",
    "intervals",
    "max_demand_kw",
    "max_demand_at",
    "hours",
    "estimated_intervals",
    "edited_intervals",
    "quality_intervals",
]


def _quality_counts(document: dict[str, Any]) -> dict[str, int]:
    """A rollup document's intervals per quality code, codes with none left out."""
    counts = document.get("quality_intervals")
    if counts is None:  # computed before the codes existed
        counts = reading_quality.counts_from_legacy(
            intervals=int(document["intervals"]),
            estimated=int(document.get("estimated_intervals", 0)),
            edited=int(document.get("edited_intervals", 0)),
        )
    return {code: int(n) for code, n in counts.items() if n}


def daily_usage(*, meter_pk: int, start: dt.date, end: dt.date, interval_s: int | None = None) -> list[DailyUsage]:
    """One row per local day start <= day < end (end exclusive), days without data included.

    Pass the meter's `interval_s` when the caller has the meter, to save a query.
    """
    interval_s = interval_s or _interval_s(meter_pk)
    documents = {doc["day"]: doc for doc in store.daily_documents([meter_pk], start, end, fields=_DAILY_FIELDS)}
    now = timezone.now()
    zone = local_zone()
    rows = []
    day = start
    day_start = local_midnight(day)
    while day < end:
        day_end = local_midnight(day + dt.timedelta(days=1))
        document = documents.get(day.isoformat())
        ended = _ended_intervals(day_start, day_end, interval_s, now)
        if document is None:
            hours = int((day_end - day_start).total_seconds() // 3600)
            rows.append(DailyUsage(day, 0.0, 0.0, 0.0, ended, None, None, hours=hours))
        else:
            at = document.get("max_demand_at")
            rows.append(
                DailyUsage(
                    day=day,
                    import_kwh=float(document["total_import_kwh"]),
                    export_kwh=float(document["total_export_kwh"]),
                    estimated_import_kwh=float(document["total_estimated_import_kwh"]),
                    missing_intervals=max(0, ended - int(document["intervals"])),
                    max_demand_kw=document.get("max_demand_kw"),
                    max_demand_at=at.astimezone(zone) if at is not None else None,
                    hours=int(document["hours"]),
                    estimated_intervals=int(document["estimated_intervals"]),
                    edited_intervals=int(document["edited_intervals"]),
                    quality_intervals=_quality_counts(document),
                )
            )
        day, day_start = day + dt.timedelta(days=1), day_end
    return rows


def _hours_of(document: dict[str, object]) -> list[HourlyUsage]:
    zone = local_zone()
    start: dt.datetime = document["start"]  # type: ignore[assignment]
    imports: list[float] = document["import_kwh"]  # type: ignore[assignment]
    exports: list[float] = document["export_kwh"]  # type: ignore[assignment]
    estimated: list[float] = document["estimated_import_kwh"]  # type: ignore[assignment]
    # Rollups computed before estimated export was kept have no such array: none estimated.
    estimated_export: list[float] = document.get("estimated_export_kwh") or [0.0] * len(imports)  # type: ignore[assignment]
    return [
        HourlyUsage(
            (start + dt.timedelta(hours=k)).astimezone(zone), imports[k], exports[k], estimated[k], estimated_export[k]
        )
        for k in range(len(imports))
    ]


def _hourly(meter_pks: list[int], start: dt.datetime, end: dt.datetime) -> dict[int, list[HourlyUsage]]:
    """Hours starting in [start, end), per meter; hours without any document are left out."""
    first_day = local_day(start)
    end_day = local_day(end - dt.timedelta(microseconds=1)) + dt.timedelta(days=1)
    found: dict[int, list[HourlyUsage]] = {pk: [] for pk in meter_pks}
    for document in store.daily_documents(meter_pks, first_day, end_day):
        found[document["meter"]].extend(h for h in _hours_of(document) if start <= h.hour_start < end)
    for hours in found.values():
        # Sort and key by UTC: aware datetimes of one zone compare by wall time, which would
        # confuse the two 02:00 hours of the autumn change.
        hours.sort(key=lambda h: h.hour_start.astimezone(dt.UTC))
    return found


def hourly_usage(*, meter_pk: int, start: dt.datetime, end: dt.datetime) -> list[HourlyUsage]:
    """Every local hour starting in [start, end) (aware datetimes), hours without data as zeros."""
    have = {h.hour_start.astimezone(dt.UTC): h for h in _hourly([meter_pk], start, end)[meter_pk]}
    zone = local_zone()
    hour = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    if hour < start:
        hour += dt.timedelta(hours=1)
    rows = []
    while hour < end:
        rows.append(have.get(hour) or HourlyUsage(hour.astimezone(zone), 0.0, 0.0, 0.0))
        hour += dt.timedelta(hours=1)
    return rows


def interval_usage(
    *, meter_pk: int, start: dt.datetime, end: dt.datetime, interval_s: int | None = None
) -> list[IntervalUsage]:
    """The effective intervals that start in [start, end), by ts (their end); gaps are simply absent.

    Pass the meter's `interval_s` when the caller has the meter, to save a query.
    """
    interval = dt.timedelta(seconds=interval_s or _interval_s(meter_pk))
    rows = store.effective_intervals(meter_pk, start + interval - dt.timedelta(microseconds=1), end + interval)
    return [_interval_of(row) for row in rows if start <= row["ts"] - interval < end]


_SOURCE_OF = {
    store.SOURCE_EDIT: reading_quality.SOURCE_MANUAL,
    store.SOURCE_ESTIMATE: reading_quality.SOURCE_ESTIMATION,
}


def _interval_of(row: dict[str, Any]) -> IntervalUsage:
    quality = row.get("quality") or reading_quality.VALID.code
    return IntervalUsage(
        ts=row["ts"].astimezone(local_zone()),
        import_kwh=row.get("import_kwh"),
        export_kwh=row.get("export_kwh"),
        estimated=quality in reading_quality.ESTIMATED_CODES,
        edited=row["source"] == store.SOURCE_EDIT,
        estimate_method=row.get("method") if row["source"] == store.SOURCE_ESTIMATE else None,
        quality=quality,
        source=_SOURCE_OF.get(row["source"]) or row.get("origin") or reading_quality.SOURCE_MQTT,
    )


def interval_provenance(*, meter_pk: int, start: dt.datetime, end: dt.datetime) -> list[IntervalProvenance]:
    """interval_usage's intervals of [start, end), each with who edited it and why, or the VEE rule
    and exception that made it questionable or validated: what billing staff see behind a bill."""
    interval = dt.timedelta(seconds=_interval_s(meter_pk))
    rows = [
        row
        for row in store.effective_intervals(
            meter_pk, start + interval - dt.timedelta(microseconds=1), end + interval, detail=True
        )
        if start <= row["ts"] - interval < end
    ]
    edit_ids = {row["edit_id"] for row in rows if row.get("edit_id") and row["source"] == store.SOURCE_EDIT}
    edits = {edit.pk: edit for edit in IntervalEdit.objects.filter(pk__in=edit_ids).select_related("edited_by")}
    found = []
    for row in rows:
        edit = edits.get(row.get("edit_id") or 0) if row["source"] == store.SOURCE_EDIT else None
        flag = row.get("flag") or {}
        flagged = row["source"] == store.SOURCE_MEASURED and bool(flag)
        found.append(
            IntervalProvenance(
                usage=_interval_of(row),
                edit_id=edit.pk if edit else None,
                edited_by=edit.edited_by.get_username() if edit else "",
                edit_reason=edit.reason if edit else "",
                flag_rule=str(flag.get("rule") or "") if flagged else "",
                exception_id=flag.get("exception") if flagged else None,
            )
        )
    return found


def usage_for_billing(*, meter_pks: list[int], start: dt.datetime, end: dt.datetime) -> dict[int, list[HourlyUsage]]:
    """Hourly usage of many meters at once, for hours starting in [start, end); every meter asked is a key.

    Hours with no data at all are absent. For thousands of meters use `billing_totals`, which sums
    (and buckets by time of use) inside MongoDB instead of building an object per hour.
    """
    return _hourly(list(meter_pks), start, end)


def billing_totals(
    *,
    meter_pks: list[int],
    start: dt.date,
    end: dt.date,
    bucket_of: Callable[[dt.datetime], str] | None = None,
) -> dict[int, BillingTotals]:
    """Usage of many meters over local days start <= day < end, summed by MongoDB: the fast bulk read.

    `bucket_of(hour_start)` names the bucket (time-of-use period) of a local hour (aware, local; it
    is called once per hour of the period, not per meter); without it every hour is in "all".
    Every meter asked is a key, zeros for a meter without data. 10,000 meters x 31 days take
    about 4 s on the development machine, against about 13 s to read hourly values in Python.
    """
    bucket_of = bucket_of or (lambda _hour: "all")
    zone = local_zone()
    names: list[str] = []
    labels_by_day: dict[str, list[int]] = {}
    day = start
    while day < end:
        day_start, hours = local_midnight(day), hours_in_day(day)
        labels = []
        for k in range(hours):
            name = bucket_of((day_start + dt.timedelta(hours=k)).astimezone(zone))
            if name not in names:
                names.append(name)
            labels.append(names.index(name))
        labels_by_day[day.isoformat()] = labels
        day += dt.timedelta(days=1)
    period_start, period_end = local_midnight(start), local_midnight(end)
    elapsed_s = (min(max(timezone.now(), period_start), period_end) - period_start).total_seconds()
    intervals_s = dict(Meter.objects.filter(pk__in=meter_pks).values_list("pk", "interval_s"))
    rows = {row["meter"]: row for row in store.billing_totals(meter_pks, start, end, labels_by_day, len(names))}
    totals = {}
    for pk in meter_pks:
        row = rows.get(pk, {})
        expected = int(elapsed_s // intervals_s.get(pk, DEFAULT_INTERVAL_S))
        intervals = int(row.get("intervals", 0))
        at = row.get("max_demand_at")
        totals[pk] = BillingTotals(
            import_kwh=float(row.get("import_kwh", 0.0)),
            export_kwh=float(row.get("export_kwh", 0.0)),
            estimated_import_kwh=float(row.get("estimated_import_kwh", 0.0)),
            import_kwh_by_bucket=dict(zip(names, map(float, row.get("by_label", [0.0] * len(names))), strict=True)),
            estimated_export_kwh=float(row.get("estimated_export_kwh", 0.0)),
            estimated_import_kwh_by_bucket=dict(
                zip(names, map(float, row.get("estimated_by_label", [0.0] * len(names))), strict=True)
            ),
            max_demand_kw=row.get("max_demand_kw"),
            max_demand_at=at.astimezone(zone) if at is not None else None,
            intervals=intervals,
            estimated_intervals=int(row.get("estimated_intervals", 0)),
            expected_intervals=expected,
            missing_intervals=max(0, expected - intervals),
            intervals_by_quality={code: int(n) for code, n in (row.get("quality_intervals") or {}).items() if n},
        )
    return totals


def billing_day_profiles(*, meter_pks: list[int], start: dt.date, end: dt.date) -> dict[int, list[DayProfile]]:
    """The daily rollups of many meters for local days start <= day < end, as hourly arrays, by day.

    The bulk read for billing when it needs the hours themselves (one query, no per-hour objects;
    10,000 meters x 31 days decode in several seconds: read in chunks of meters, or let
    `billing_totals` sum inside MongoDB). Days without any data are absent; every meter asked is a key.
    """
    found: dict[int, list[DayProfile]] = {pk: [] for pk in meter_pks}
    for doc in store.daily_documents(meter_pks, start, end, fields=store.PROFILE_FIELDS):
        found[doc["meter"]].append(
            DayProfile(
                day=dt.date.fromisoformat(doc["day"]),
                start=doc["start"],
                import_kwh=doc["import_kwh"],
                export_kwh=doc["export_kwh"],
                estimated_import_kwh=doc["estimated_import_kwh"],
                max_demand_kw=doc.get("max_demand_kw"),
                max_demand_at=doc.get("max_demand_at"),
                intervals=int(doc["intervals"]),
                expected_intervals=int(doc["expected_intervals"]),
                estimated_intervals=int(doc["estimated_intervals"]),
            )
        )
    for days in found.values():
        days.sort(key=lambda d: d.day)
    return found


def incomplete_days(*, meter_pks: list[int], start: dt.date, end: dt.date) -> dict[int, list[dt.date]]:
    """Per meter, the local days start <= day < end whose rollup lacks intervals (or is absent), up to today.

    Estimated and edited intervals count as present: these are the days VEE has not filled.
    """
    have = {
        (doc["meter"], doc["day"]): int(doc["intervals"]) >= int(doc["expected_intervals"])
        for doc in store.daily_documents(meter_pks, start, end, fields=("intervals", "expected_intervals"))
    }
    last = min(end, local_today() + dt.timedelta(days=1))
    found: dict[int, list[dt.date]] = {pk: [] for pk in meter_pks}
    for pk in meter_pks:
        day = start
        while day < last:
            if not have.get((pk, day.isoformat()), False):
                found[pk].append(day)
            day += dt.timedelta(days=1)
    return found


def vee_exception_list(
    *, status: str | None = VeeException.Status.OPEN, kind: str | None = None, meter_pk: int | None = None
) -> QuerySet[VeeException]:
    """The exception queue: what needs a person, newest period first (status None: all)."""
    queryset = VeeException.objects.select_related("meter", "resolved_by")
    if status is not None:
        queryset = queryset.filter(status=status)
    if kind is not None:
        queryset = queryset.filter(kind=kind)
    if meter_pk is not None:
        queryset = queryset.filter(meter_id=meter_pk)
    return queryset


def released_in_batch(run_date: dt.date, batch: int) -> QuerySet[DeterminantDelivery, int]:
    """The accounts (pks) whose determinants of run_date went out in this delivery batch (a subquery
    for the API's page of accounts)."""
    return DeterminantDelivery.objects.filter(run_date=run_date, batch=batch).values_list("account_id", flat=True)


def pending_accounts(run_date: dt.date) -> list[DeterminantDelivery]:
    """Accounts of the date whose determinants are not released yet (the CIS asks which)."""
    return list(
        DeterminantDelivery.objects.filter(run_date=run_date, batch__isnull=True)
        .select_related("account", "meter", "command")
        .order_by("account__number")
    )


def outbox_delivery_log(*, limit: int) -> list[OutboxDelivery]:
    """The newest versions of outbox files with their attempts, for billing staff's delivery log."""
    return list(OutboxDelivery.objects.prefetch_related("attempt_log").order_by("-found_at", "-id")[:limit])


def billing_run_counts() -> dict[str, int]:
    """Billing runs by state, every state present (for /metrics)."""
    found = dict(BillingRun.objects.order_by().values("status").annotate(n=Count("id")).values_list("status", "n"))
    return {state.value: int(found.get(state.value, 0)) for state in BillingRun.Status}


def outbox_delivery_counts() -> dict[str, int]:
    """Versions of outbox files by delivery status, every status present (for /metrics)."""
    found = dict(OutboxDelivery.objects.order_by().values("status").annotate(n=Count("id")).values_list("status", "n"))
    return {status.value: int(found.get(status.value, 0)) for status in OutboxDelivery.Status}
