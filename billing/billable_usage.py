"""What billing determinants need, read in bulk: the accounts due, the meters that served them, holidays,
tariff terms and the determinants themselves (selectors: nothing here writes).

Meters that share a tariff and a stretch of days (most of a run) are summed by MongoDB in one bulk
read, so a run of thousands of accounts makes a handful of queries per chunk.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet

from billing import determinants as det
from billing.selectors import (
    IntervalProvenance,
    billing_totals,
    daily_usage,
    interval_provenance,
    interval_usage,
    usage_for_billing,
)
from mdms.core.localtime import each_day, hours_in_day, local_day, local_midnight, local_zone
from mdms.core.models import Account, Holiday, MeterInstallation, MeterMultiplier


@dataclass(frozen=True)
class _Served:
    meter_pk: int
    serial: str
    multiplier: Decimal
    interval_s: int
    start_day: dt.date | None  # installed within the window: from that day
    end_day: dt.date | None  # removed within the window: until that day (exclusive)


def multiplier_stretches(
    history: Sequence[tuple[dt.date, Decimal]], default: Decimal, first: dt.date, end: dt.date
) -> list[tuple[dt.date, dt.date, Decimal]]:
    """[first, end) cut where the multiplier changes: (from, until, multiplier in force), in order.

    history is (effective_from, multiplier) sorted by day; a day before its first row takes default.
    """
    current = default
    for day, multiplier in history:
        if day <= first:
            current = multiplier
    stretches = []
    lower = first
    for day, multiplier in history:
        if first < day < end:
            if multiplier != current:
                stretches.append((lower, day, current))
                lower = day
            current = multiplier
    stretches.append((lower, end, current))
    return stretches


def _meters_serving(premise_pks: Sequence[int], start: dt.date, end: dt.date) -> dict[int, list[_Served]]:
    """Per premise, the meters installed there during [start, end), with the part they served.

    A meter whose multiplier changed inside the window serves once per multiplier, each part from its
    change day, so that every day is scaled by the multiplier in force on it. On an exchange day two
    meters serve the premise; the ingest keeps each to its own side of the exchange moment.
    """
    rows = list(
        MeterInstallation.objects.filter(premise_id__in=premise_pks, installed_on__lt=end)
        .filter(Q(removed_on__isnull=True) | Q(removed_on__gt=start))
        .values_list(
            "premise_id",
            "meter_id",
            "meter__serial",
            "meter__multiplier",
            "meter__interval_s",
            "installed_on",
            "removed_on",
        )
    )
    history: dict[int, list[tuple[dt.date, Decimal]]] = defaultdict(list)
    for meter_pk, effective_from, multiplier in (
        MeterMultiplier.objects.filter(meter_id__in={row[1] for row in rows}, effective_from__lt=end)
        .order_by("effective_from")
        .values_list("meter_id", "effective_from", "multiplier")
    ):
        history[meter_pk].append((effective_from, multiplier))
    served: dict[int, list[_Served]] = defaultdict(list)
    for premise_pk, meter_pk, serial, multiplier, interval_s, installed_on, removed_on in rows:
        first = max(installed_on, start)
        until = min(removed_on, end) if removed_on else end
        for lower, upper, in_force in multiplier_stretches(history.get(meter_pk, []), multiplier, first, until):
            served[premise_pk].append(
                _Served(
                    meter_pk,
                    serial,
                    in_force,
                    interval_s,
                    lower if lower > start else None,
                    upper if upper < end else None,
                )
            )
    return served


def meters_for(
    accounts: Sequence[Account], windows: dict[int, det.Window]
) -> dict[int, list[tuple[int, dt.date, dt.date]]]:
    """Per account, the meters that served its premise in its window: (meter pk, first day, end day)."""
    if not accounts:
        return {}
    first = min(windows[a.pk].billed_start for a in accounts)
    last = max(windows[a.pk].billed_end for a in accounts)
    served = _meters_serving([a.premise_id for a in accounts], first, last)
    found: dict[int, list[tuple[int, dt.date, dt.date]]] = {}
    for account in accounts:
        window = windows[account.pk]
        found[account.pk] = []
        for s in served.get(account.premise_id, []):
            lower = max(window.billed_start, s.start_day or window.billed_start)
            upper = min(window.billed_end, s.end_day or window.billed_end)
            if lower < upper:
                found[account.pk].append((s.meter_pk, lower, upper))
    return found


def holidays_in(start: dt.date, end: dt.date) -> frozenset[dt.date]:
    return frozenset(Holiday.objects.filter(date__gte=start, date__lt=end).values_list("date", flat=True))


def terms_cache() -> Callable[[Account], det.TariffTerms]:
    cache: dict[int, det.TariffTerms] = {}

    def terms(account: Account) -> det.TariffTerms:
        if account.tariff_id not in cache:
            cache[account.tariff_id] = det.tariff_terms(account.tariff)
        return cache[account.tariff_id]

    return terms


def determinants_for(
    accounts: Sequence[Account], windows: dict[int, det.Window], terms: Callable[[Account], det.TariffTerms]
) -> dict[int, det.Determinants | Exception]:
    """Determinants of many accounts (keyed by account pk), each with its own window.

    Meters that share a tariff and a stretch of days (most of a run) are summed by MongoDB in one
    bulk read; a window ending at a read time (a final bill) is summed from its hours. An account
    that cannot be computed gets its exception instead, so that one bad account never stops the others.
    """
    if not accounts:
        return {}
    first = min(w.billed_start for w in windows.values())
    last = max(w.billed_end for w in windows.values())
    served = _meters_serving([a.premise_id for a in accounts], first, last)
    holidays = holidays_in(first, last)
    # (tariff, first day, end day) -> meters; each meter's stretch is the window cut to its installation.
    groups: dict[tuple[int, dt.date, dt.date], set[int]] = defaultdict(set)
    stretches: dict[int, list[tuple[_Served, dt.date, dt.date]]] = {}
    for account in accounts:
        window = windows[account.pk]
        if window.usage_end is not None:
            continue
        stretches[account.pk] = []
        for s in served.get(account.premise_id, []):
            lower = max(window.billed_start, s.start_day or window.billed_start)
            upper = min(window.billed_end, s.end_day or window.billed_end)
            if lower < upper:
                stretches[account.pk].append((s, lower, upper))
                groups[(account.tariff_id, lower, upper)].add(s.meter_pk)
    tariffs = {account.tariff_id: account for account in accounts}
    totals: dict[tuple[int, dt.date, dt.date], dict[int, Any] | Exception] = {}
    for key, meter_pks in groups.items():
        tariff_pk, lower, upper = key
        try:
            namer = det.bucket_namer(terms(tariffs[tariff_pk]), holidays)
            totals[key] = billing_totals(meter_pks=sorted(meter_pks), start=lower, end=upper, bucket_of=namer)
        except Exception as exc:  # noqa: BLE001 - every account of the group records it
            totals[key] = exc
    results: dict[int, det.Determinants | Exception] = {}
    for account in accounts:
        try:
            window = windows[account.pk]
            if window.usage_end is not None:
                meters = _usage_to_read(account, window, served.get(account.premise_id, []), terms, holidays)
            else:
                meters = []
                for s, lower, upper in stretches[account.pk]:
                    found = totals[(account.tariff_id, lower, upper)]
                    if isinstance(found, Exception):
                        raise found
                    part = {"meter": s.serial, "from": lower.isoformat(), "until": upper.isoformat()}
                    meters.append(det.MeterUsage(s.multiplier, found[s.meter_pk], part))
            result = det.compute(terms=terms(account), window=window, meters=meters, zone=local_zone())
            results[account.pk] = _without_shared_days(result, served.get(account.premise_id, []), window)
        except Exception as exc:  # noqa: BLE001 - recorded on the run; the run goes on
            results[account.pk] = exc
    return results


def _without_shared_days(result: det.Determinants, served: list[_Served], window: det.Window) -> det.Determinants:
    """An exchange day is served by two meters, each for its side of the moment: its intervals are
    expected once, not once per meter (the missing ones are what neither meter sent)."""
    first = window.billed_start
    end = min(window.billed_end, local_day(window.usage_end)) if window.usage_end else window.billed_end
    seen: set[dt.date] = set()
    shared = 0
    for s in sorted(served, key=lambda s: s.start_day or first):
        lower, upper = max(first, s.start_day or first), min(end, s.end_day or end)
        for day in each_day(lower, upper):
            if day in seen:
                shared += hours_in_day(day) * 3600 // s.interval_s
            seen.add(day)
    if not shared:
        return result
    return replace(
        result,
        intervals_expected=result.intervals_expected - shared,
        intervals_missing=max(0, result.intervals_missing - shared),
    )


def _usage_to_read(
    account: Account,
    window: det.Window,
    served: list[_Served],
    terms: Callable[[Account], det.TariffTerms],
    holidays: frozenset[dt.date],
) -> list[det.MeterUsage]:
    """Usage from the window's start to a read's time, hour by hour (one account: a final bill)."""
    start, end = window.bounds(local_zone())
    namer = det.bucket_namer(terms(account), holidays)
    meters = []
    for s in served:
        lower = max(start, local_midnight(s.start_day)) if s.start_day else start
        upper = min(end, local_midnight(s.end_day)) if s.end_day else end
        if lower >= upper:
            continue
        hours = usage_for_billing(meter_pks=[s.meter_pk], start=lower, end=upper)[s.meter_pk]
        days = daily_usage(meter_pk=s.meter_pk, start=local_day(lower), end=local_day(upper) + dt.timedelta(days=1))
        peaks = [(d.max_demand_at, d.max_demand_kw) for d in days if d.max_demand_at and d.max_demand_kw is not None]
        totals = det.totals_from_hours(
            hours, start=lower, end=upper, bucket_of=namer, interval_s=s.interval_s, peaks=peaks
        )
        # Hours know no interval's quality: one account's intervals are read for their codes.
        intervals = interval_usage(meter_pk=s.meter_pk, start=lower, end=upper, interval_s=s.interval_s)
        totals = replace(totals, intervals_by_quality=dict(Counter(i.quality for i in intervals)))
        part = {"meter": s.serial, "from": lower.isoformat(), "until": upper.isoformat()}
        meters.append(det.MeterUsage(s.multiplier, totals, part))
    return meters


def accounts_due_query(run_date: dt.date) -> QuerySet[Account]:
    """Accounts with their bill-cycle day on run_date, active at some point of the period billed, by pk,
    with their tariff: the API pages this in the database (a count and a slice, not every account)."""
    period_start, period_end = det.cycle_period(run_date)
    return (
        Account.objects.filter(bill_cycle_day=run_date.day, move_in_date__lt=period_end)
        .filter(Q(move_out_date__isnull=True) | Q(move_out_date__gt=period_start))
        .select_related("tariff")
        .order_by("pk")
    )


def accounts_due(run_date: dt.date) -> list[Account]:
    """accounts_due_query, all of them, with their tariffs' terms read ahead (a run prices every one)."""
    return list(accounts_due_query(run_date).prefetch_related("tariff__tou_periods", "tariff__versions"))


@dataclass(frozen=True)
class BilledInterval:
    """One interval behind a bill: the meter it came from, the multiplier in force, how it was obtained."""

    serial: str
    multiplier: Decimal
    interval_s: int
    interval: IntervalProvenance

    @property
    def start(self) -> dt.datetime:
        # On the UTC instant: subtracting from a local wall-clock time is wrong across a DST change.
        end = self.interval.usage.ts
        return (end.astimezone(dt.UTC) - dt.timedelta(seconds=self.interval_s)).astimezone(end.tzinfo)

    @property
    def billed_import_kwh(self) -> float | None:
        kwh = self.interval.usage.import_kwh
        return None if kwh is None else float(Decimal(repr(kwh)) * self.multiplier)


def bill_intervals(bill: Any, *, quality: frozenset[str] | None = None) -> list[BilledInterval]:
    """Every interval that made up a bill's energy, by meter part and time: each meter that served the
    premise in the billed days (both on an exchange day, one part per multiplier), up to a final
    bill's read; only the codes in `quality` when given.

    Read from the stored intervals as they are now: an interval changed since billing (an actual for
    an estimate, an edit) shows its present value, and the bill keeps the one it was priced with.
    """
    window = det.Window(
        bill.period_start,
        bill.period_end,
        dt.date.fromisoformat(bill.determinants.get("billed_start", bill.period_start.isoformat())),
        dt.date.fromisoformat(bill.determinants.get("billed_end", bill.period_end.isoformat())),
        usage_end=bill.final_read.read_at if bill.final_read_id else None,
    )
    start, end = window.bounds(local_zone())
    found: list[BilledInterval] = []
    for s in _meters_serving([bill.account.premise_id], window.billed_start, window.billed_end).get(
        bill.account.premise_id, []
    ):
        lower = max(start, local_midnight(s.start_day)) if s.start_day else start
        upper = min(end, local_midnight(s.end_day)) if s.end_day else end
        if lower >= upper:
            continue
        found.extend(
            BilledInterval(s.serial, s.multiplier, s.interval_s, row)
            for row in interval_provenance(meter_pk=s.meter_pk, start=lower, end=upper)
            if quality is None or row.usage.quality in quality
        )
    return found
