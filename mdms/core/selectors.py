"""Reads of master data. Every consumer-facing query is filtered by the user, never by an id alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from mdms.core.models import Account, Meter, MeterCertificate, MeterExchange, Region
from mdms.core.roles import Role, user_roles

# A premise's chain of exchanges is followed this far back (a guard; a real premise sees a few).
MAX_EXCHANGE_CHAIN = 50


def accounts_for_user(user: User | AnonymousUser) -> QuerySet[Account]:
    """The accounts a user may see: a consumer's own; staff roles see all; anyone else none."""
    base = Account.objects.select_related("customer", "premise__feeder__region", "tariff")
    roles = user_roles(user)
    if roles & {Role.OPERATOR, Role.BILLING}:
        return base.all()
    if Role.CONSUMER in roles and isinstance(user, User):
        return base.filter(customer__user=user)
    return base.none()


def meters_for_user(user: User | AnonymousUser) -> QuerySet[Meter]:
    base = Meter.objects.select_related("premise__feeder__region")
    roles = user_roles(user)
    if roles & {Role.OPERATOR, Role.BILLING}:
        return base.all()
    if Role.CONSUMER in roles and isinstance(user, User):
        # The meters at the premises of the user's accounts: a subquery, where joining the accounts
        # needed a DISTINCT over every column (most of the query's time went to planning it).
        return base.filter(premise_id__in=Account.objects.filter(customer__user=user).values("premise_id"))
    return base.none()


def meter_exchanges_into(meter: Meter) -> list[MeterExchange]:
    """The exchanges that led to this meter on its premise, newest first (A -> B -> C: C's are B->C, A->B).

    The old meters' history is the premise's history: the consumer's dashboard shows it as one series.
    """
    found: list[MeterExchange] = []
    current = meter.pk
    while len(found) < MAX_EXCHANGE_CHAIN:
        exchange = MeterExchange.objects.select_related("old_meter", "new_meter").filter(new_meter_id=current).first()
        if exchange is None:
            break
        found.append(exchange)
        current = exchange.old_meter_id
    return found


def meter_by_serial(serial: str) -> Meter | None:
    return Meter.objects.filter(serial=serial).first()


def account_by_number(number: str) -> Account | None:
    return Account.objects.filter(number=number).first()


def grid_summary() -> list[dict[str, Any]]:
    """Per region: feeders, premises, and meters by status."""
    rows = Region.objects.annotate(
        feeder_count=Count("feeders", distinct=True),
        premise_count=Count("feeders__premises", distinct=True),
        meter_count=Count("feeders__premises__meters", distinct=True),
        active_meters=Count(
            "feeders__premises__meters", filter=Q(feeders__premises__meters__status=Meter.Status.ACTIVE), distinct=True
        ),
        disabled_meters=Count(
            "feeders__premises__meters",
            filter=Q(feeders__premises__meters__status=Meter.Status.DISABLED),
            distinct=True,
        ),
    ).order_by("code")
    return [
        {
            "region": r,
            "feeders": r.feeder_count,  # type: ignore[attr-defined]
            "premises": r.premise_count,  # type: ignore[attr-defined]
            "meters": r.meter_count,  # type: ignore[attr-defined]
            "active": r.active_meters,  # type: ignore[attr-defined]
            "disabled": r.disabled_meters,  # type: ignore[attr-defined]
        }
        for r in rows
    ]


def accounts_by_cycle_day() -> list[dict[str, Any]]:
    rows: Any = (
        Account.objects.filter(move_out_date__isnull=True)
        .values("bill_cycle_day", "tariff__name")
        .annotate(accounts=Count("id"))
        .order_by("bill_cycle_day", "tariff__name")
    )
    return [dict(row) for row in rows]


def revoked_certificate_serials() -> list[tuple[str, dt.datetime]]:
    """(serial number in hex, revoked at) of the revoked meter certificates not yet expired: the CRL.

    An expired certificate is refused by the broker anyway, so the CRL need not list it.
    """
    rows = MeterCertificate.objects.filter(revoked_at__isnull=False, not_after__gt=timezone.now())
    return [
        (serial, revoked_at) for serial, revoked_at in rows.values_list("serial_number", "revoked_at") if revoked_at
    ]


def meter_valid_certificate(meter: Meter) -> MeterCertificate | None:
    return MeterCertificate.objects.filter(meter=meter, revoked_at__isnull=True).first()


def serials_with_valid_certificates() -> list[str]:
    """The serials of meters that hold an unrevoked client certificate (they need no password)."""
    return list(
        MeterCertificate.objects.filter(revoked_at__isnull=True).values_list("meter__serial", flat=True).distinct()
    )


def meter_search(
    *,
    text: str = "",
    region_pk: int | None = None,
    feeder_pk: int | None = None,
    status: str | None = None,
) -> QuerySet[Meter]:
    """Meters (with premise, feeder, region and open accounts' customers) for staff's "find a meter".

    `text` matches a part of the serial, the premise's address, city or postcode, or a customer's
    name or e-mail at the premise, or a feeder's code exactly. Ordered by serial.
    """
    queryset = Meter.objects.select_related("premise__feeder__region").prefetch_related(
        Prefetch(
            "premise__accounts",
            queryset=Account.objects.filter(move_out_date__isnull=True).select_related("customer").order_by("number"),
            to_attr="open_accounts",
        )
    )
    text = text.strip()
    if text:
        customers = Account.objects.filter(
            Q(customer__name__icontains=text) | Q(customer__email__icontains=text)
        ).values("premise_id")
        queryset = queryset.filter(
            Q(serial__icontains=text)
            | Q(premise__address__icontains=text)
            | Q(premise__city__icontains=text)
            | Q(premise__postcode__iexact=text)
            | Q(premise__feeder__code__iexact=text)
            | Q(premise_id__in=customers)
        )
    if region_pk is not None:
        queryset = queryset.filter(premise__feeder__region_id=region_pk)
    if feeder_pk is not None:
        queryset = queryset.filter(premise__feeder_id=feeder_pk)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("serial")
