"""Reads for Green Button Connect: what a consumer may share, and what a subscription lets a token see.

What a token sees is worked out on every request, never stored: the subscription's meters that
are still at the consumer's premises, and its days cut to the consumer's own tenancy (a meter at
their premises does not make the previous household's history theirs; a move-out ends the sharing).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.utils import timezone

from billing import selectors as usage
from billing.models import Bill
from greenbutton.models import Subscription
from mdms.core.localtime import local_midnight, local_today
from mdms.core.models import Account, Meter
from mdms.core.timeseries import rollups as rollup_store


def consumer_meters(user: User | AnonymousUser) -> QuerySet[Meter]:
    """Meters at the premises of the user's own accounts. Staff share nothing: their access is not theirs to give."""
    if not user.is_authenticated:
        return Meter.objects.none()
    return (
        Meter.objects.filter(premise__accounts__customer__user=user)
        .select_related("premise")
        .distinct()
        .order_by("serial")
    )


def tenancy(user: User, meter: Meter) -> tuple[dt.date, dt.date | None] | None:
    """[first day, end day) of the user's accounts at the meter's premises (end None: still there), or None."""
    accounts = list(Account.objects.filter(customer__user=user, premise=meter.premise))
    if meter.premise_id is None or not accounts:
        return None
    start = min(a.move_in_date for a in accounts)
    ends = [a.move_out_date for a in accounts]
    return start, None if None in ends else max(e for e in ends if e is not None)


def active_subscription(*, user_id: int | None, application_id: int | None) -> Subscription | None:
    if user_id is None or application_id is None:
        return None
    return (
        Subscription.objects.select_related("application", "user")
        .filter(user_id=user_id, application_id=application_id, revoked_at__isnull=True)
        .first()
    )


def subscriptions_for_user(user: User) -> list[Subscription]:
    """The user's active grants, newest first, with their applications and meters."""
    return list(
        Subscription.objects.filter(user=user, revoked_at__isnull=True)
        .select_related("application")
        .prefetch_related("meters")
        .order_by("-updated_at", "-id")
    )


@dataclass(frozen=True)
class SharedMeter:
    """A meter of a subscription and the local days [first_day, end_day) it shares today."""

    meter: Meter
    first_day: dt.date
    end_day: dt.date

    def clamp(self, first: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
        return max(first, self.first_day), min(end, self.end_day)


def shared_meters(subscription: Subscription, *, today: dt.date | None = None) -> dict[int, SharedMeter]:
    """The subscription's meters the consumer still holds, by pk, with the days each shares (up to today)."""
    tomorrow = (today or local_today()) + dt.timedelta(days=1)
    held = set(consumer_meters(subscription.user).values_list("pk", flat=True))
    shared: dict[int, SharedMeter] = {}
    for meter in subscription.meters.select_related("premise").order_by("serial"):
        window = tenancy(subscription.user, meter) if meter.pk in held else None
        if window is None:
            continue
        first = max(subscription.start_date, window[0])
        ends = [tomorrow, window[1], subscription.end_date and subscription.end_date + dt.timedelta(days=1)]
        end = min(e for e in ends if e is not None)
        shared[meter.pk] = SharedMeter(meter, first, max(first, end))
    return shared


@dataclass(frozen=True)
class BlockDay:
    """A local day's IntervalBlock stamps: published when the day ended (or was first computed, for
    today), updated when its rollup was last recomputed (a late reading, an estimate, an edit)."""

    day: dt.date
    published: dt.datetime
    updated: dt.datetime


def block_days(
    meter: Meter, first: dt.date, end: dt.date, *, now: dt.datetime | None = None
) -> dict[dt.date, BlockDay]:
    now = now or timezone.now()
    computed = {
        dt.date.fromisoformat(doc["day"]): doc["computed_at"].astimezone(dt.UTC)
        for doc in rollup_store.daily_documents([meter.pk], first, end, fields=["computed_at"])
        if doc.get("computed_at")
    }
    days: dict[dt.date, BlockDay] = {}
    day = first
    while day < end:
        day_end = local_midnight(day + dt.timedelta(days=1))
        updated = computed.get(day, min(day_end, now))
        published = min(day_end, updated)
        days[day] = BlockDay(day, published, max(updated, published))
        day += dt.timedelta(days=1)
    return days


def intervals(meter: Meter, first: dt.date, end: dt.date) -> list[usage.IntervalUsage]:
    """The effective intervals of local days first <= day < end."""
    if first >= end:
        return []
    return usage.interval_usage(meter_pk=meter.pk, start=local_midnight(first), end=local_midnight(end))


def bills(subscription: Subscription, shared: SharedMeter) -> list[Bill]:
    """Current bills of the consumer's accounts at the meter's premises whose period overlaps the shared days."""
    return list(
        Bill.objects.filter(
            is_current=True,
            account__customer__user=subscription.user,
            account__premise=shared.meter.premise,
            period_end__gt=shared.first_day,
            period_start__lt=shared.end_day,
        )
        .select_related("account")
        .order_by("period_start", "id")
    )
