"""Billing determinants from hourly usage: pure functions, no database, no clock.

Input: the tariff's terms, each meter's totals over the window (summed and bucketed by time of use
in bulk by billing.selectors.billing_totals, or from hours here for a stretch ending mid-day), and
the window the account is billed for. Output:
what a bill is computed from and what the CIS receives.

Sums here use math.fsum, which is correctly rounded, so the order in which hours arrive can never
change a sum (plain float addition is not associative; a bill must not depend on order).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

KWH = Decimal("0.001")
SHARE = Decimal("0.0001")

WEEKDAY = "weekday"
WEEKEND = "weekend"
HOLIDAY = "holiday"  # billed with the weekend bands, reported apart


class TotalsLike(Protocol):
    """One meter's usage over a stretch of days (billing.selectors.BillingTotals fits).

    Energies as metered, before the multiplier; import_kwh and export_kwh include estimates, and
    estimated_import_kwh and estimated_export_kwh are the estimated parts. Buckets are named by
    bucket_namer(); estimated_import_kwh_by_bucket is the estimated part of each.
    """

    @property
    def import_kwh(self) -> float: ...
    @property
    def export_kwh(self) -> float: ...
    @property
    def estimated_import_kwh(self) -> float: ...
    @property
    def estimated_export_kwh(self) -> float: ...
    @property
    def import_kwh_by_bucket(self) -> dict[str, float]: ...
    @property
    def estimated_import_kwh_by_bucket(self) -> dict[str, float]: ...
    @property
    def max_demand_kw(self) -> float | None: ...
    @property
    def max_demand_at(self) -> dt.datetime | None: ...
    @property
    def expected_intervals(self) -> int: ...
    @property
    def missing_intervals(self) -> int: ...
    @property
    def intervals_by_quality(self) -> dict[str, int]: ...


class HourlyLike(Protocol):
    """An hour of usage (billing.selectors.HourlyUsage fits): for stretches that end within a day."""

    @property
    def hour_start(self) -> dt.datetime: ...
    @property
    def import_kwh(self) -> float: ...
    @property
    def export_kwh(self) -> float: ...
    @property
    def estimated_import_kwh(self) -> float: ...
    @property
    def estimated_export_kwh(self) -> float: ...


@dataclass(frozen=True)
class TouBand:
    name: str
    day_type: str  # weekday or weekend (holidays use weekend bands)
    start_hour: int
    end_hour: int  # 24 for midnight at the end of the day
    rate_per_kwh: Decimal

    def covers(self, hour: int) -> bool:
        if self.start_hour < self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour  # wraps midnight


@dataclass(frozen=True)
class TariffTerms:
    """A tariff's prices, loaded once per run and shared by every account on it."""

    code: str
    currency: str
    fixed_monthly_charge: Decimal
    energy_rate_per_kwh: Decimal | None  # None: time of use
    demand_charge_per_kw: Decimal
    export_credit_per_kwh: Decimal
    bands: tuple[TouBand, ...] = ()
    # The tariff's price versions (TariffVersion), oldest first; empty: its own prices on every day.
    versions: tuple[PriceVersion, ...] = ()

    @property
    def is_time_of_use(self) -> bool:
        return self.energy_rate_per_kwh is None

    def band_for(self, day_type: str, hour: int) -> TouBand:
        wanted = WEEKDAY if day_type == WEEKDAY else WEEKEND
        for band in self.bands:
            if band.day_type == wanted and band.covers(hour):
                return band
        raise ValueError(f"tariff {self.code} has no {wanted} time-of-use period covering hour {hour}")

    def rate_for(self, key: str) -> Decimal:
        """The rate of an energy_by_period key ("weekday:peak")."""
        day_type, name = key.split(":", 1)
        wanted = WEEKDAY if day_type == WEEKDAY else WEEKEND
        for band in self.bands:
            if band.day_type == wanted and band.name == name:
                return band.rate_per_kwh
        raise ValueError(f"tariff {self.code} has no {wanted} period {name!r}")


def tariff_terms(tariff: Any) -> TariffTerms:
    """TariffTerms of a core Tariff (its tou_periods best prefetched)."""
    bands = tuple(
        TouBand(
            name=p.name,
            day_type=p.day_type,
            start_hour=p.start_time.hour,
            end_hour=p.end_time.hour or 24,
            rate_per_kwh=p.rate_per_kwh,
        )
        for p in tariff.tou_periods.all()
    )
    return TariffTerms(
        code=tariff.code,
        currency=tariff.currency,
        fixed_monthly_charge=tariff.fixed_monthly_charge,
        energy_rate_per_kwh=tariff.energy_rate_per_kwh,
        demand_charge_per_kw=tariff.demand_charge_per_kw,
        export_credit_per_kwh=tariff.export_credit_per_kwh,
        bands=bands,
        versions=tuple(
            PriceVersion(
                effective_from=v.effective_from,
                fixed_monthly_charge=v.fixed_monthly_charge,
                energy_rate_per_kwh=v.energy_rate_per_kwh,
                demand_charge_per_kw=v.demand_charge_per_kw,
                export_credit_per_kwh=v.export_credit_per_kwh,
                period_rates={key: Decimal(str(rate)) for key, rate in (v.period_rates or {}).items()},
            )
            for v in sorted(tariff.versions.all(), key=lambda v: v.effective_from)
        ),
    )


@dataclass(frozen=True)
class MeterUsage:
    """One meter's part of an account's window: its totals and its multiplier.

    part names it for the determinants (meter, from, until) when more than one part served the window.
    """

    multiplier: Decimal
    totals: TotalsLike
    part: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Totals:
    """TotalsLike built here from hours, for a final bill that ends at the read, within a day."""

    import_kwh: float
    export_kwh: float
    estimated_import_kwh: float
    import_kwh_by_bucket: dict[str, float]
    max_demand_kw: float | None
    max_demand_at: dt.datetime | None
    expected_intervals: int
    missing_intervals: int
    estimated_export_kwh: float = 0.0
    estimated_import_kwh_by_bucket: dict[str, float] = field(default_factory=dict)
    # Hours carry no per-interval quality: a stretch summed from hours counts none.
    intervals_by_quality: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """The cycle period, and the part of it the account is billed for (moves prorate)."""

    period_start: dt.date  # the cycle's first day
    period_end: dt.date  # the cycle's end, exclusive
    billed_start: dt.date  # later than period_start after a move-in
    billed_end: dt.date  # earlier than period_end after a move-out
    usage_end: dt.datetime | None = None  # a final read's time: usage up to it, not to midnight

    @classmethod
    def for_account(
        cls, *, period_start: dt.date, period_end: dt.date, move_in: dt.date, move_out: dt.date | None
    ) -> Window:
        billed_start = max(period_start, move_in)
        billed_end = min(period_end, move_out) if move_out else period_end
        if billed_end <= billed_start:
            raise ValueError(f"the account is not active between {period_start} and {period_end}")
        return cls(period_start, period_end, billed_start, billed_end)

    @property
    def cycle_days(self) -> int:
        return (self.period_end - self.period_start).days

    @property
    def billed_days(self) -> int:
        return (self.billed_end - self.billed_start).days

    def bounds(self, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """Local midnight to local midnight (or the final read), DST-safe: 23, 24 or 25 hours a day."""
        # In UTC: arithmetic between two datetimes of the same ZoneInfo ignores the DST change.
        start = dt.datetime.combine(self.billed_start, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        end = self.usage_end or dt.datetime.combine(self.billed_end, dt.time(), tzinfo=zone)
        return start, end.astimezone(dt.UTC)


@dataclass
class Determinants:
    period_start: dt.date
    period_end: dt.date
    billed_start: dt.date
    billed_end: dt.date
    cycle_days: int
    billed_days: int
    import_kwh: Decimal
    export_kwh: Decimal
    net_kwh: Decimal
    estimated_kwh: Decimal  # both directions: estimated import plus estimated export
    estimated_share: Decimal  # of the energy metered in both directions
    multiplier: Decimal
    intervals_expected: int
    intervals_missing: int
    max_demand_kw: Decimal | None
    max_demand_at: dt.datetime | None
    # "weekday:peak" -> kWh; holidays have their own day type, priced with the weekend bands.
    energy_by_period: dict[str, Decimal] = field(default_factory=dict)
    estimated_import_kwh: Decimal = Decimal(0)
    estimated_export_kwh: Decimal = Decimal(0)
    # The estimated part of each energy_by_period key (only keys with an estimate): flags each line.
    estimated_by_period: dict[str, Decimal] = field(default_factory=dict)
    # Each meter part when more than one served the window (an exchange, a multiplier change):
    # {"meter", "from", "until", "multiplier", "import_kwh"}, so a clerk sees what made the total.
    meters: list[dict[str, str]] = field(default_factory=list)
    # The billed intervals per quality code (mdms.core.reading_quality), codes with none left out,
    # and each code's share of them: how much of the bill rests on what.
    intervals_by_quality: dict[str, int] = field(default_factory=dict)

    @property
    def quality_share(self) -> dict[str, Decimal]:
        counted = sum(self.intervals_by_quality.values())
        if not counted:
            return {}
        return {
            code: (Decimal(n) / counted).quantize(SHARE, rounding=ROUND_HALF_UP)
            for code, n in sorted(self.intervals_by_quality.items())
        }

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, decimals as strings (exact), times in ISO 8601 with offset."""
        return {
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "billed_start": self.billed_start.isoformat(),
            "billed_end": self.billed_end.isoformat(),
            "cycle_days": self.cycle_days,
            "billed_days": self.billed_days,
            "import_kwh": str(self.import_kwh),
            "export_kwh": str(self.export_kwh),
            "net_kwh": str(self.net_kwh),
            "estimated_kwh": str(self.estimated_kwh),
            "estimated_import_kwh": str(self.estimated_import_kwh),
            "estimated_export_kwh": str(self.estimated_export_kwh),
            "estimated_share": str(self.estimated_share),
            "multiplier": str(self.multiplier),
            "intervals_expected": self.intervals_expected,
            "intervals_missing": self.intervals_missing,
            "max_demand_kw": None if self.max_demand_kw is None else str(self.max_demand_kw),
            "max_demand_at": None if self.max_demand_at is None else self.max_demand_at.isoformat(),
            "energy_by_period": {k: str(v) for k, v in sorted(self.energy_by_period.items())},
            "estimated_by_period": {k: str(v) for k, v in sorted(self.estimated_by_period.items())},
            **({"meters": [dict(part) for part in self.meters]} if self.meters else {}),
            "intervals_by_quality": dict(sorted(self.intervals_by_quality.items())),
            "quality_share": {code: str(share) for code, share in self.quality_share.items()},
        }


def day_type(day: dt.date, holidays: Set[dt.date]) -> str:
    if day in holidays:
        return HOLIDAY
    return WEEKEND if day.weekday() >= 5 else WEEKDAY


def _kwh(kwh: float, multiplier: Decimal) -> Decimal:
    return (Decimal(repr(kwh)) * multiplier).quantize(KWH, rounding=ROUND_HALF_UP)


def bucket_namer(terms: TariffTerms, holidays: Set[dt.date]) -> Callable[[dt.datetime], str]:
    """The energy_by_period key of a local hour ("weekday:peak", "holiday:all-day"); "all" when flat.

    Each real hour is classified by its local clock hour, so DST days (0,1,3,... or 0,1,2,2,3,...)
    are priced by what the clock on the wall said.
    """
    if not terms.is_time_of_use:
        return lambda hour_start: "all"

    def name(hour_start: dt.datetime) -> str:
        kind = day_type(hour_start.date(), holidays)
        return f"{kind}:{terms.band_for(kind, hour_start.hour).name}"

    return name


def totals_from_hours(
    hours: Iterable[HourlyLike],
    *,
    start: dt.datetime,
    end: dt.datetime,
    bucket_of: Callable[[dt.datetime], str],
    interval_s: int,
    peaks: Iterable[tuple[dt.datetime, float]] = (),
) -> Totals:
    """Sum the hours starting in [start, end); peaks are (end of 15 minutes, kW) candidates, e.g. daily maxima."""
    imported: list[float] = []
    exported: list[float] = []
    estimated: list[float] = []
    estimated_export: list[float] = []
    buckets: dict[str, list[float]] = {}
    estimated_buckets: dict[str, list[float]] = {}
    seen: set[dt.datetime] = set()
    utc = dt.UTC
    # Each value read once: a page's bill projection sums some 700 hours three times.
    for hour in hours:
        hour_start = hour.hour_start
        key = hour_start.astimezone(utc)
        if not start <= key < end or key in seen:
            continue
        seen.add(key)
        import_kwh, estimated_import_kwh = hour.import_kwh, hour.estimated_import_kwh
        imported.append(import_kwh)
        exported.append(hour.export_kwh)
        estimated.append(estimated_import_kwh)
        estimated_export.append(hour.estimated_export_kwh)
        bucket = bucket_of(hour_start)
        in_bucket = buckets.get(bucket)
        if in_bucket is None:
            in_bucket = buckets[bucket] = []
            estimated_buckets[bucket] = []
        in_bucket.append(import_kwh)
        estimated_buckets[bucket].append(estimated_import_kwh)
    inside = [(at, kw) for at, kw in peaks if start < at <= end]
    peak = max(inside, key=lambda p: (p[1], -p[0].timestamp()), default=None)
    expected = int((end - start).total_seconds() // interval_s)
    per_hour = 3600 // interval_s
    return Totals(
        import_kwh=math.fsum(imported),
        export_kwh=math.fsum(exported),
        estimated_import_kwh=math.fsum(estimated),
        import_kwh_by_bucket={name: math.fsum(values) for name, values in buckets.items()},
        max_demand_kw=peak[1] if peak else None,
        max_demand_at=peak[0] if peak else None,
        expected_intervals=expected,
        # Hours are the finest grain here: an hour with any data counts as complete.
        missing_intervals=max(0, expected - len(seen) * per_hour),
        estimated_export_kwh=math.fsum(estimated_export),
        estimated_import_kwh_by_bucket={name: math.fsum(values) for name, values in estimated_buckets.items()},
    )


def compute(*, terms: TariffTerms, window: Window, meters: Iterable[MeterUsage], zone: ZoneInfo) -> Determinants:
    """The determinants of one account for one window, from the totals of the meters that served it."""
    total_import = total_export = total_estimated = total_estimated_export = Decimal(0)
    by_period: dict[str, Decimal] = {}
    estimated_by_period: dict[str, Decimal] = {}
    multipliers: set[Decimal] = set()
    expected = missing = 0
    peak: tuple[Decimal, dt.datetime] | None = None
    parts: list[dict[str, str]] = []
    by_quality: dict[str, int] = {}
    for meter in meters:
        totals = meter.totals
        for code, n in totals.intervals_by_quality.items():
            by_quality[code] = by_quality.get(code, 0) + n
        multipliers.add(meter.multiplier)
        parts.append(
            {
                **meter.part,
                "multiplier": str(meter.multiplier),
                "import_kwh": str(_kwh(totals.import_kwh, meter.multiplier)),
            }
        )
        total_import += _kwh(totals.import_kwh, meter.multiplier)
        total_export += _kwh(totals.export_kwh, meter.multiplier)
        total_estimated += _kwh(totals.estimated_import_kwh, meter.multiplier)
        total_estimated_export += _kwh(totals.estimated_export_kwh, meter.multiplier)
        if terms.is_time_of_use:
            for name, kwh in totals.import_kwh_by_bucket.items():
                by_period[name] = by_period.get(name, Decimal(0)) + _kwh(kwh, meter.multiplier)
            for name, kwh in totals.estimated_import_kwh_by_bucket.items():
                estimated_by_period[name] = estimated_by_period.get(name, Decimal(0)) + _kwh(kwh, meter.multiplier)
        expected += totals.expected_intervals
        missing += totals.missing_intervals
        if totals.max_demand_kw is not None and totals.max_demand_at is not None:
            value = _kwh(totals.max_demand_kw, meter.multiplier)
            at = totals.max_demand_at
            # Highest wins; on a tie the earliest, so that the order of meters never matters.
            if peak is None or value > peak[0] or (value == peak[0] and at < peak[1]):
                peak = (value, at)
    # Both directions: an estimated export is as much a guess on the bill as an estimated import.
    estimated_both = total_estimated + total_estimated_export
    metered_both = total_import + total_export
    share = (estimated_both / metered_both).quantize(SHARE, rounding=ROUND_HALF_UP) if metered_both else Decimal(0)
    if estimated_both and not share:
        share = SHARE  # never 0 when anything was estimated: is_estimated and the flags rely on it
    return Determinants(
        period_start=window.period_start,
        period_end=window.period_end,
        billed_start=window.billed_start,
        billed_end=window.billed_end,
        cycle_days=window.cycle_days,
        billed_days=window.billed_days,
        import_kwh=total_import,
        export_kwh=total_export,
        net_kwh=total_import - total_export,
        estimated_kwh=estimated_both,
        estimated_share=share,
        multiplier=max(multipliers) if multipliers else Decimal(1),
        intervals_expected=expected,
        intervals_missing=missing,
        max_demand_kw=peak[0] if peak else None,
        max_demand_at=peak[1].astimezone(zone) if peak else None,
        energy_by_period={name: kwh for name, kwh in by_period.items() if kwh},
        estimated_import_kwh=total_estimated,
        estimated_export_kwh=total_estimated_export,
        estimated_by_period={name: kwh for name, kwh in estimated_by_period.items() if kwh},
        meters=sorted(parts, key=lambda part: (part.get("from", ""), part.get("meter", ""))) if len(parts) > 1 else [],
        intervals_by_quality={code: n for code, n in by_quality.items() if n},
    )


def cycle_period(run_date: dt.date) -> tuple[dt.date, dt.date]:
    """The period billed on run_date: the month before it, from the same day (cycle days are <= 28)."""
    if run_date.month == 1:
        return run_date.replace(year=run_date.year - 1, month=12), run_date
    return run_date.replace(month=run_date.month - 1), run_date


def current_period(bill_cycle_day: int, today: dt.date) -> tuple[dt.date, dt.date]:
    """The cycle period [start, end) containing `today`, for an account billed on bill_cycle_day."""
    start = today.replace(day=bill_cycle_day)
    if start > today:
        start = cycle_period(start)[0]
    return start, next_month(start)


def next_month(day: dt.date) -> dt.date:
    """The same day a month later (cycle days are <= 28, so every month has it)."""
    if day.month == 12:
        return day.replace(year=day.year + 1, month=1)
    return day.replace(month=day.month + 1)


@dataclass(frozen=True)
class PriceVersion:
    """A tariff version's prices (mdms.core.models.TariffVersion), from `effective_from` on."""

    effective_from: dt.date
    fixed_monthly_charge: Decimal
    energy_rate_per_kwh: Decimal | None
    demand_charge_per_kw: Decimal
    export_credit_per_kwh: Decimal
    period_rates: dict[str, Decimal] = field(default_factory=dict)  # "weekday:peak" -> rate


def terms_with_prices(terms: TariffTerms, version: PriceVersion) -> TariffTerms:
    """The tariff's terms with a version's prices; a time-of-use period the version does not name keeps its rate."""
    bands = tuple(
        TouBand(
            name=band.name,
            day_type=band.day_type,
            start_hour=band.start_hour,
            end_hour=band.end_hour,
            rate_per_kwh=version.period_rates.get(f"{band.day_type}:{band.name}", band.rate_per_kwh),
        )
        for band in terms.bands
    )
    return TariffTerms(
        code=terms.code,
        currency=terms.currency,
        fixed_monthly_charge=version.fixed_monthly_charge,
        energy_rate_per_kwh=version.energy_rate_per_kwh if not terms.is_time_of_use else None,
        demand_charge_per_kw=version.demand_charge_per_kw,
        export_credit_per_kwh=version.export_credit_per_kwh,
        bands=bands,
        versions=terms.versions,
    )


def version_spans(
    versions: Iterable[PriceVersion], start: dt.date, end: dt.date
) -> list[tuple[dt.date, dt.date, PriceVersion | None]]:
    """Split the days [start, end) where the version in effect changes: (first day, end day, version).

    Days before the first version get None (the tariff's own prices). The spans tile [start, end)
    exactly, in order, and each names the version in effect on every one of its days.
    """
    ordered = sorted(versions, key=lambda v: v.effective_from)
    spans: list[tuple[dt.date, dt.date, PriceVersion | None]] = []
    current: PriceVersion | None = None
    for version in ordered:
        if version.effective_from <= start:
            current = version
    cursor = start
    for version in ordered:
        if start < version.effective_from < end:
            spans.append((cursor, version.effective_from, current))
            cursor, current = version.effective_from, version
    spans.append((cursor, end, current))
    return spans
