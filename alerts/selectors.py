"""Reads of alerts: a consumer's own rules and notifications (others' are 404), and the operators' volume."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import Http404

from alerts.models import AlertRule, Notification
from mdms.core.localtime import local_midnight, local_zone
from mdms.core.models import Meter


def rules_for_user(user: User | AnonymousUser, meter: Meter) -> QuerySet[AlertRule]:
    if not isinstance(user, User):
        return AlertRule.objects.none()
    return AlertRule.objects.filter(user=user, meter=meter).order_by("kind", "pk")


def rule_for_user(user: User | AnonymousUser, meter: Meter, rule_pk: int) -> AlertRule:
    """The user's own rule on this meter; anyone else's is a 404, never a 403."""
    rule = rules_for_user(user, meter).filter(pk=rule_pk).select_related("meter").first()
    if rule is None:
        raise Http404("No such alert")
    return rule


def notifications_for_user(user: User | AnonymousUser) -> QuerySet[Notification]:
    if not isinstance(user, User):
        return Notification.objects.none()
    return Notification.objects.filter(user=user).select_related("meter").order_by("-created_at", "-pk")


def unread_count(user: User | AnonymousUser) -> int:
    if not isinstance(user, User):
        return 0
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


@dataclass(frozen=True)
class VolumeDay:
    day: dt.date
    by_kind: list[int]  # in the order of NotificationVolume.kinds
    total: int


@dataclass(frozen=True)
class NotificationVolume:
    """What the operators watch: how many notifications, of which kind, and whether e-mail gets out."""

    days: list[VolumeDay]  # newest first
    kinds: list[tuple[str, str]]  # (value, label)
    total_by_kind: list[int]
    total: int
    emails: dict[str, int]  # state -> notifications of the window
    emails_failing: int  # failed (retrying) or abandoned, of all time: what needs a look
    rules: int
    rules_muted: int
    rules_by_kind: list[int]


def notification_volume(*, today: dt.date, days: int = 14) -> NotificationVolume:
    """Notifications created on the local days (today - days, today], by day and kind, and e-mail states."""
    first = today - dt.timedelta(days=days - 1)
    recent = Notification.objects.filter(created_at__gte=local_midnight(first))
    kinds = list(AlertRule.Kind.choices)
    counts: dict[tuple[dt.date, str], int] = {}
    for row in (
        recent.annotate(day=TruncDate("created_at", tzinfo=local_zone())).values("day", "kind").annotate(n=Count("pk"))
    ):
        counts[(row["day"], row["kind"])] = row["n"]
    rows = []
    for offset in range(days):
        day = today - dt.timedelta(days=offset)
        by_kind = [counts.get((day, kind), 0) for kind, _label in kinds]
        rows.append(VolumeDay(day, by_kind, sum(by_kind)))
    total_by_kind = [sum(row.by_kind[k] for row in rows) for k in range(len(kinds))]
    emails = {row["email_state"]: row["n"] for row in recent.values("email_state").annotate(n=Count("pk"))}
    failing = Notification.objects.filter(
        email_state__in=[Notification.EmailState.FAILED, Notification.EmailState.ABANDONED]
    ).count()
    rule_counts = AlertRule.objects.aggregate(total=Count("pk"), muted=Count("pk", filter=Q(muted=True)))
    by_rule_kind = dict(AlertRule.objects.values_list("kind").annotate(n=Count("pk")).values_list("kind", "n"))
    return NotificationVolume(
        days=rows,
        kinds=kinds,
        total_by_kind=total_by_kind,
        total=sum(total_by_kind),
        emails=emails,
        emails_failing=failing,
        rules=rule_counts["total"],
        rules_muted=rule_counts["muted"],
        rules_by_kind=[by_rule_kind.get(kind, 0) for kind, _label in kinds],
    )
