"""The bill of the current period, projected: usage so far plus the meter's own habits for the rest.

The hours already gone are read from the daily rollups, as a bill reads them. The hours still to
come take the meter's mean for that weekday and local hour over the weeks before, the profile VEE
estimation fills long gaps with (store.hourly_profile over estimation.PROFILE_DAYS). Both go
through the same determinants and pricing as a real bill (det.totals_from_hours, det.compute,
pricing.line_items), so a projection and the bill that follows can be compared line by line.

Uncertainty: days differ. Over the weeks before, the meter's complete days have a standard
deviation `sd` of daily kWh; if days were independent, the rest of the period (n days) would
differ from the profile by sd x sqrt(n) in kWh, and BAND_Z of that is a nominal 90 % band. The
band is priced by scaling the projected hours up and down through the same pricing, so time of
use and export credit stay right. The band says nothing of a change of habits (a holiday away).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from billing import determinants as det
from billing import pricing
from billing.billable_usage import holidays_in
from billing.selectors import DailyUsage, daily_usage, usage_for_billing
from billing.vee.estimation import PROFILE_DAYS
from mdms.core.localtime import local_hour_start, local_midnight, local_zone
from mdms.core.models import Account, Meter
from mdms.core.timeseries import rollups as store

# z of a two-sided 90 % band under a normal law.
BAND_Z = 1.645
# Days needed to measure the spread of daily usage; with fewer, FALLBACK_DAILY_CV of the mean
# day stands in for it (a household's daily usage typically varies by 20-40 %).
MIN_SPREAD_DAYS = 5
FALLBACK_DAILY_CV = 0.3


@dataclass(frozen=True)
class ProjectedHour:
    """An hour still to come, as the pricing reads hours (det.HourlyLike); all of it is an estimate."""

    hour_start: dt.datetime  # aware, local
    import_kwh: float
    export_kwh: float

    @property
    def estimated_import_kwh(self) -> float:
        return self.import_kwh

    @property
    def estimated_export_kwh(self) -> float:
        return self.export_kwh


@dataclass(frozen=True)
class BillProjection:
    account: Account
    meter: Meter
    as_of: dt.datetime  # the end of the hours read as measured; projected from here on
    window: det.Window
    currency: str
    point: Decimal
    low: Decimal
    high: Decimal
    elapsed_share: float  # of the billed hours, 0..1
    days_elapsed: float
    days_total: int
    kwh_so_far: float  # imported so far, with the meter's multiplier (as billed)
    kwh_projected: float  # for the whole billed window
    kwh_band: float  # +/- kWh of the band
    profile_days: int  # complete days the spread rests on (0: the fallback spread)
    basis: str  # "profile" (the meter's weekday/hour means) or "period" (this period's mean so far)
    determinants: det.Determinants
    line_items: list[pricing.LineItem]

    @property
    def last_day(self) -> dt.date:
        """The last local day billed (the window's end is exclusive)."""
        return self.window.billed_end - dt.timedelta(days=1)


def _daily_spread(history: list[DailyUsage]) -> tuple[float, int]:
    """(sd of daily import kWh, days) over the complete days of `history` (days with data all day)."""
    days = [day.import_kwh for day in history if day.missing_intervals == 0]
    if len(days) < 2:
        return 0.0, len(days)
    return statistics.stdev(days), len(days)


def _price(
    terms: det.TariffTerms,
    window: det.Window,
    meter: Meter,
    hours: list[det.HourlyLike],
    *,
    bounds: tuple[dt.datetime, dt.datetime],
    namer: Callable[[dt.datetime], str],
    peaks: list[tuple[dt.datetime, float]],
) -> tuple[det.Determinants, list[pricing.LineItem], Decimal]:
    totals = det.totals_from_hours(
        hours, start=bounds[0], end=bounds[1], bucket_of=namer, interval_s=meter.interval_s, peaks=peaks
    )
    zone = local_zone()
    determinants = det.compute(terms=terms, window=window, meters=[det.MeterUsage(meter.multiplier, totals)], zone=zone)
    spans = det.version_spans(terms.versions, window.billed_start, window.billed_end)
    if len(spans) == 1:
        version = spans[0][2]
        items = pricing.line_items(determinants, det.terms_with_prices(terms, version) if version else terms)
        return determinants, items, pricing.total(items)
    # A price change inside the period: each version's days priced on their own, as the bill run does.
    parts: list[tuple[det.Determinants, det.TariffTerms]] = []
    for first, end, version in spans:
        part = det.Window(window.period_start, window.period_end, first, end)
        part_start, part_end = part.bounds(zone)
        part_start, part_end = max(part_start, bounds[0]), min(part_end, bounds[1])
        part_totals = det.totals_from_hours(
            [h for h in hours if part_start <= h.hour_start < part_end],
            start=part_start,
            end=part_end,
            bucket_of=namer,
            interval_s=meter.interval_s,
            peaks=[(at, kw) for at, kw in peaks if part_start < at <= part_end],
        )
        parts.append(
            (
                det.compute(
                    terms=terms, window=part, meters=[det.MeterUsage(meter.multiplier, part_totals)], zone=zone
                ),
                det.terms_with_prices(terms, version) if version else terms,
            )
        )
    items = pricing.line_items_by_version(parts, determinants)
    return determinants, items, pricing.total(items)


def bill_projection(*, account: Account, meter: Meter, now: dt.datetime | None = None) -> BillProjection | None:
    """Project the account's bill for the cycle period containing `now`, from `meter`'s data.

    None when the account is not active in that period, or when the meter has neither a profile
    nor a single hour of usage in the period to project from.
    """
    zone = local_zone()
    now = now or timezone.now()
    today = now.astimezone(zone).date()
    period_start, period_end = det.current_period(account.bill_cycle_day, today)
    try:
        window = det.Window.for_account(
            period_start=period_start,
            period_end=period_end,
            move_in=account.move_in_date,
            move_out=account.move_out_date,
        )
    except ValueError:
        return None
    start, end = window.bounds(zone)
    cutoff = min(max(local_hour_start(now), start), end)
    terms = det.tariff_terms(account.tariff)
    namer = det.bucket_namer(terms, holidays_in(window.billed_start, window.billed_end))
    per_hour = 3600 / meter.interval_s

    actual = usage_for_billing(meter_pks=[meter.pk], start=start, end=cutoff)[meter.pk] if cutoff > start else []
    # History from the account's own tenancy only: the household before moved out with its habits.
    tenancy = local_midnight(account.move_in_date)
    # From the daily rollups, not the raw readings: this runs on every dashboard view.
    profile = store.hourly_profile_from_rollups(
        meter.pk, max(cutoff - dt.timedelta(days=PROFILE_DAYS), tenancy), cutoff
    )
    basis = "profile"
    if profile:
        mean = (
            sum(i for i, _ in profile.values()) / len(profile) * per_hour,
            sum(e for _, e in profile.values()) / len(profile) * per_hour,
        )
        by_slot = {key: (i * per_hour, e * per_hour) for key, (i, e) in profile.items()}
    elif actual:
        # No history before this period: this period's own mean hour so far.
        basis = "period"
        mean = (
            math.fsum(h.import_kwh for h in actual) / len(actual),
            math.fsum(h.export_kwh for h in actual) / len(actual),
        )
        by_slot = {}
    else:
        return None

    projected: list[ProjectedHour] = []
    hour = cutoff
    while hour < end:
        local = hour.astimezone(zone)
        import_kwh, export_kwh = by_slot.get((local.isoweekday(), local.hour), mean)
        projected.append(ProjectedHour(local, import_kwh, export_kwh))
        hour += dt.timedelta(hours=1)

    # Maximum demand: the daily peaks measured so far, and for the days to come the meter's
    # typical (median) daily peak of the weeks before.
    # Both from one read of the days they span (they overlap by most of the period).
    history_start = max(today - dt.timedelta(days=PROFILE_DAYS), account.move_in_date)
    days = daily_usage(
        meter_pk=meter.pk,
        start=min(history_start, window.billed_start),
        end=today + dt.timedelta(days=1),
        interval_s=meter.interval_s,
    )
    history = [d for d in days if history_start <= d.day < today]
    so_far = [d for d in days if d.day >= window.billed_start]
    peaks = [
        (d.max_demand_at.astimezone(dt.UTC), d.max_demand_kw)
        for d in so_far
        if d.max_demand_at is not None and d.max_demand_kw is not None and d.max_demand_at <= cutoff
    ]
    typical = [d.max_demand_kw for d in history if d.max_demand_kw is not None]
    if projected and typical:
        peaks.append((end, statistics.median(typical)))

    hours: list[det.HourlyLike] = [*actual, *projected]
    determinants, items, point = _price(terms, window, meter, hours, bounds=(start, end), namer=namer, peaks=peaks)

    remaining_days = len(projected) / 24
    sd, spread_days = _daily_spread(history)
    to_come = math.fsum(h.import_kwh for h in projected)
    if spread_days < MIN_SPREAD_DAYS:
        sd = FALLBACK_DAILY_CV * (to_come / remaining_days) if remaining_days else 0.0
        spread_days = 0
    band = BAND_Z * sd * math.sqrt(remaining_days)
    low = high = point
    if to_come > 0 and band > 0:
        bounds_ = []
        for kwh in (max(0.0, to_come - band), to_come + band):
            scale = kwh / to_come
            # Built directly: dataclasses.replace costs several times more, for up to 700 hours twice a page.
            scaled = [ProjectedHour(h.hour_start, h.import_kwh * scale, h.export_kwh) for h in projected]
            bounds_.append(
                _price(terms, window, meter, [*actual, *scaled], bounds=(start, end), namer=namer, peaks=peaks)[2]
            )
        low, high = min(bounds_), max(bounds_)

    multiplier = float(meter.multiplier)
    total_hours = (end - start).total_seconds() / 3600
    return BillProjection(
        account=account,
        meter=meter,
        as_of=cutoff,
        window=window,
        currency=terms.currency,
        point=point,
        low=low,
        high=high,
        elapsed_share=((cutoff - start).total_seconds() / 3600) / total_hours if total_hours else 1.0,
        days_elapsed=(cutoff - start).total_seconds() / 86400,
        days_total=window.billed_days,
        kwh_so_far=math.fsum(h.import_kwh for h in actual) * multiplier,
        kwh_projected=float(determinants.import_kwh),
        kwh_band=band * multiplier,
        profile_days=spread_days,
        basis=basis,
        determinants=determinants,
        line_items=items,
    )
