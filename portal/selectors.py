"""What the consumer pages read, always through the user: another customer's meter or bill is a 404.

Usage comes from billing.selectors (daily rollups, estimated energy flagged), last year's daily
totals straight from the rollup store (totals only); today's power from the raw readings of the
day (at most one day of one meter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from billing import selectors as usage
from billing.models import Bill
from mdms.core import selectors as core
from mdms.core.localtime import local_midnight as local_midnight_of
from mdms.core.localtime import local_today
from mdms.core.models import Account, Meter
from mdms.core.roles import Role, user_roles
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries import rollups as rollup_store

# The dashboard shows this month and the five before it.
DASHBOARD_MONTHS = 6
# Bills listed on the dashboard (a year and a bit of monthly bills).
DASHBOARD_BILLS = 13


def meter_for_user(user: User | AnonymousUser, meter_pk: int) -> Meter:
    """The meter if this user may see it; otherwise 404, so a stranger's meter is never confirmed to exist."""
    meter = core.meters_for_user(user).filter(pk=meter_pk).first()
    if meter is None:
        raise Http404("No such meter")
    return meter


def accounts_at(user: User | AnonymousUser, meter: Meter) -> list[Account]:
    """The user's accounts at the meter's premises (none for a meter not installed anywhere)."""
    if meter.premise_id is None:
        return []
    return list(core.accounts_for_user(user).filter(premise_id=meter.premise_id).order_by("-move_in_date"))


@dataclass(frozen=True)
class VisibleDays:
    """The local days [start, end) of a meter's data a user may see; None is unbounded.

    A consumer sees their own tenancy only: the household that lived there before moved out with
    its usage history, and a meter at their premises does not make that history theirs.
    """

    start: dt.date | None = None
    end: dt.date | None = None

    def __contains__(self, day: object) -> bool:
        assert isinstance(day, dt.date)
        return (self.start is None or self.start <= day) and (self.end is None or day < self.end)

    def clamp(self, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
        """[start, end) cut to the visible days (possibly empty: start >= end)."""
        return max(start, self.start or start), min(end, self.end or end)


def visible_days(user: User | AnonymousUser, accounts: Sequence[Account]) -> VisibleDays:
    """What of a meter's history this user may see, given their `accounts` at its premises."""
    roles = user_roles(user)
    if roles & {Role.OPERATOR, Role.BILLING} or not accounts:
        return VisibleDays()
    start = min(a.move_in_date for a in accounts)
    open_ended = any(a.move_out_date is None for a in accounts)
    end = None if open_ended else max(a.move_out_date for a in accounts if a.move_out_date is not None)
    return VisibleDays(start, end)


def bills_for_user(user: User | AnonymousUser, accounts: Sequence[Account] | None = None) -> QuerySet[Bill]:
    """Current bill versions of the accounts this user may see (or of `accounts`, already read through
    the user), newest period first, with line items."""
    return (
        Bill.objects.filter(is_current=True, account__in=core.accounts_for_user(user) if accounts is None else accounts)
        .select_related("account")
        .prefetch_related("line_items")
        .order_by("-period_start", "-id")
    )


def bill_for_user(user: User | AnonymousUser, bill_pk: int) -> Bill:
    bill = bills_for_user(user).select_related("account__premise", "account__customer", "account__tariff")
    found = bill.filter(pk=bill_pk).first()
    if found is None:
        raise Http404("No such bill")
    return found


def _months_back(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def _year_before(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


@dataclass
class DayUsage:
    day: dt.date
    import_kwh: float
    export_kwh: float
    estimated_import_kwh: float


@dataclass
class MonthUsage:
    month: dt.date  # first day
    import_kwh: float = 0.0
    export_kwh: float = 0.0
    estimated_import_kwh: float = 0.0
    days_with_data: int = 0
    last_year_import_kwh: float | None = None
    last_year_export_kwh: float | None = None

    @property
    def self_sufficiency(self) -> float | None:
        return net_self_sufficiency(self.import_kwh, self.export_kwh)


@dataclass(frozen=True)
class ExchangeMark:
    """A meter exchange inside the dashboard's range, marked on its chart."""

    at: dt.datetime  # local
    old_serial: str
    new_serial: str


@dataclass
class UsageSummary:
    """Six months of one meter (and of the meters it replaced on its premise), shaped for the dashboard's charts."""

    start: dt.date
    end: dt.date  # exclusive (tomorrow)
    days: list[DayUsage]
    months: list[MonthUsage]
    # heatmap[h][d]: kWh imported in local hour h of days[d] (the repeated autumn hour adds up).
    heatmap: list[list[float]] = field(default_factory=list)
    exchanges: list[ExchangeMark] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return any(m.days_with_data for m in self.months)

    @property
    def import_kwh(self) -> float:
        return sum(m.import_kwh for m in self.months)

    @property
    def export_kwh(self) -> float:
        return sum(m.export_kwh for m in self.months)

    @property
    def estimated_import_kwh(self) -> float:
        return sum(m.estimated_import_kwh for m in self.months)

    @property
    def self_sufficiency(self) -> float | None:
        return net_self_sufficiency(self.import_kwh, self.export_kwh)


def net_self_sufficiency(import_kwh: float, export_kwh: float) -> float | None:
    """Exports over imports, capped at 1: how much of the energy taken from the grid the home gave back.

    A meter sees only the grid side, not the panels, so the energy used straight from the roof is
    unknown; this net figure is what the meter can honestly say (1.0 = net zero over the period).
    """
    if import_kwh <= 0:
        return 1.0 if export_kwh > 0 else None
    return min(1.0, export_kwh / import_kwh)


def _local_hours(profile: usage.DayProfile) -> list[int]:
    zone = usage.local_zone()
    return [(profile.start + dt.timedelta(hours=k)).astimezone(zone).hour for k in range(len(profile.import_kwh))]


def usage_summary(meter: Meter, *, today: dt.date | None = None, visible: VisibleDays | None = None) -> UsageSummary:
    """Daily bars, monthly totals with last year's, and the hour x day heatmap: two rollup reads.

    Days outside `visible` count as days without data.
    """
    visible = visible or VisibleDays()
    today = today or local_today()
    start = _months_back(today, DASHBOARD_MONTHS - 1)
    end = today + dt.timedelta(days=1)
    # Continuous across an exchange: the meters this one replaced on its premise are part of its history
    # (each keeps only its own side of the exchange moment, so their days add up, the exchange day too).
    exchanges = core.meter_exchanges_into(meter)
    meter_pks = [meter.pk, *(exchange.old_meter_id for exchange in exchanges)]
    by_meter = usage.billing_day_profiles(meter_pks=meter_pks, start=start, end=end)
    # Last year only needs each day's totals: leaving the hourly arrays in MongoDB halves the page's decoding.
    last_year = rollup_store.daily_documents(
        meter_pks, _year_before(start), _year_before(end), fields=("total_import_kwh", "total_export_kwh")
    )

    by_day = _merged_days(by_meter)
    months: dict[dt.date, MonthUsage] = {}
    days: list[DayUsage] = []
    heatmap: list[list[float]] = [[] for _ in range(24)]
    day = start
    while day < end:
        month = months.setdefault(day.replace(day=1), MonthUsage(day.replace(day=1)))
        profile = by_day.get(day) if day in visible else None
        hours = [0.0] * 24
        if profile is None:
            days.append(DayUsage(day, 0.0, 0.0, 0.0))
        else:
            row = DayUsage(day, sum(profile.import_kwh), sum(profile.export_kwh), sum(profile.estimated_import_kwh))
            days.append(row)
            month.import_kwh += row.import_kwh
            month.export_kwh += row.export_kwh
            month.estimated_import_kwh += row.estimated_import_kwh
            month.days_with_data += 1
            if len(profile.import_kwh) == 24:
                hours = profile.import_kwh
            else:  # a DST day: its 23 or 25 hours go to their local hour of day
                for hour, kwh in zip(_local_hours(profile), profile.import_kwh, strict=True):
                    hours[hour] += kwh
        # Rollup values are already rounded (to the Wh/1000); rounding 4,400 cells here would cost more
        # than the rest of the page's arithmetic.
        for hour in range(24):
            heatmap[hour].append(hours[hour])
        day += dt.timedelta(days=1)

    for document in last_year:
        # The same calendar month a year later is the month it is compared with.
        day = dt.date.fromisoformat(document["day"])
        if day not in visible:
            continue
        target = months.get(dt.date(day.year + 1, day.month, 1))
        if target is not None:
            target.last_year_import_kwh = (target.last_year_import_kwh or 0.0) + float(document["total_import_kwh"])
            target.last_year_export_kwh = (target.last_year_export_kwh or 0.0) + float(document["total_export_kwh"])
    marks = [
        ExchangeMark(timezone.localtime(x.exchanged_at), x.old_meter.serial, x.new_meter.serial)
        for x in reversed(exchanges)
        if local_midnight_of(start) <= x.exchanged_at < local_midnight_of(end)
    ]
    return UsageSummary(start=start, end=end, days=days, months=list(months.values()), heatmap=heatmap, exchanges=marks)


def _merged_days(by_meter: dict[int, list[usage.DayProfile]]) -> dict[dt.date, usage.DayProfile]:
    """One profile per day, the meters' hours added (a day's hours are the same whichever meter read them)."""
    merged: dict[dt.date, usage.DayProfile] = {}
    for profiles in by_meter.values():
        for p in profiles:
            seen = merged.get(p.day)
            if seen is None or len(seen.import_kwh) != len(p.import_kwh):
                merged[p.day] = p if seen is None else seen
                continue
            merged[p.day] = replace(
                seen,
                import_kwh=[a + b for a, b in zip(seen.import_kwh, p.import_kwh, strict=True)],
                export_kwh=[a + b for a, b in zip(seen.export_kwh, p.export_kwh, strict=True)],
                estimated_import_kwh=[
                    a + b for a, b in zip(seen.estimated_import_kwh, p.estimated_import_kwh, strict=True)
                ],
                intervals=seen.intervals + p.intervals,
                estimated_intervals=seen.estimated_intervals + p.estimated_intervals,
            )
    return merged


@dataclass(frozen=True)
class PowerPoint:
    at: dt.datetime  # interval end, local
    power_w: float  # net: import positive, export negative


def today_power(meter: Meter, *, now: dt.datetime | None = None) -> list[PowerPoint]:
    """Today's readings of the meter as net power, from local midnight until now.

    A reading's own power_w (net, negative while exporting, as the MQTT contract's meters send it)
    is used when present; otherwise the interval's average, from its energies.
    """
    now = now or timezone.now()
    zone = usage.local_zone()
    midnight = usage.local_midnight(now.astimezone(zone).date())
    points = []
    for reading in stored.readings_for_meter(meter.pk, midnight + dt.timedelta(microseconds=1), now):
        power = reading.get("power_w")
        if power is None:
            interval_s = reading.get("interval_s") or meter.interval_s
            net_kwh = (reading.get("energy_import_kwh") or 0.0) - (reading.get("energy_export_kwh") or 0.0)
            power = net_kwh * 1000 * 3600 / interval_s
        points.append(PowerPoint(reading["ts"].astimezone(zone), float(power)))
    return points


def meter_usage_intervals(
    meter: Meter, start: dt.date, end: dt.date, *, visible: VisibleDays | None = None
) -> list[usage.IntervalUsage]:
    """The effective intervals of local days start <= day < end (those visible), for the download."""
    start, end = (visible or VisibleDays()).clamp(start, end)
    if start >= end:
        return []
    return usage.interval_usage(
        meter_pk=meter.pk,
        start=usage.local_midnight(start),
        end=usage.local_midnight(end),
        interval_s=meter.interval_s,
    )
