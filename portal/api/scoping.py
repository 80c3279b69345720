"""What each caller may see, as querysets. Every API view starts from these, never from Model.objects.

Machine clients (tokens) act for the utility and see every object their scopes reach; staff see
all; a consumer sees only objects tied to their own accounts; anyone else sees nothing.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet
from rest_framework.request import Request

from billing.models import Bill, OnDemandRead
from commands.models import MeterCommand
from mdms.core.models import Account, Customer, Meter, Premise, Tariff, TariffVersion
from mdms.core.roles import Role, user_roles
from mdms.core.selectors import accounts_for_user, meters_for_user
from monitoring.models import OutageIncident
from portal.api.auth import token_of

STAFF = {Role.OPERATOR, Role.BILLING}


def _is_machine_or_staff(request: Request) -> bool:
    return token_of(request) is not None or bool(user_roles(request.user) & STAFF)


def _consumer(request: Request) -> User | None:
    user = request.user
    return user if isinstance(user, User) and Role.CONSUMER in user_roles(user) else None


def meters(request: Request) -> QuerySet[Meter]:
    if token_of(request) is not None:
        return Meter.objects.select_related("premise__feeder__region")
    return meters_for_user(request.user)


def accounts(request: Request) -> QuerySet[Account]:
    if token_of(request) is not None:
        return Account.objects.select_related("customer", "premise__feeder__region", "tariff")
    return accounts_for_user(request.user)


def customers(request: Request) -> QuerySet[Customer]:
    if _is_machine_or_staff(request):
        return Customer.objects.all()
    consumer = _consumer(request)
    return Customer.objects.filter(user=consumer) if consumer else Customer.objects.none()


def premises(request: Request) -> QuerySet[Premise]:
    base = Premise.objects.select_related("feeder__region")
    if _is_machine_or_staff(request):
        return base.all()
    consumer = _consumer(request)
    return base.filter(accounts__customer__user=consumer).distinct() if consumer else base.none()


def bills(request: Request) -> QuerySet[Bill]:
    """Every version of the caller's bills; a consumer does not see cancelled ones (issued wrongly)."""
    base = Bill.objects.select_related("account").prefetch_related("line_items")
    if not _is_machine_or_staff(request):
        base = base.filter(cancelled_at__isnull=True)
    return base.filter(account__in=accounts(request))


def on_demand_reads(request: Request) -> QuerySet[OnDemandRead]:
    """Reads are billing's tools: consumers see none, even of their own meters."""
    base = OnDemandRead.objects.select_related("meter", "account")
    return base.all() if _is_machine_or_staff(request) else base.none()


def meter_commands(request: Request) -> QuerySet[MeterCommand]:
    """Commands act on the utility's equipment: for staff and machine clients only."""
    base = MeterCommand.objects.select_related("meter").prefetch_related("events")
    return base.all() if _is_machine_or_staff(request) else base.none()


def incidents(request: Request) -> QuerySet[OutageIncident]:
    """Incidents span many customers: for staff and machine clients only."""
    base = OutageIncident.objects.select_related("feeder", "region")
    return base.all() if _is_machine_or_staff(request) else base.none()


def tariffs(request: Request) -> QuerySet[Tariff]:
    """Every tariff for machines and staff; a consumer's own accounts' tariffs for them."""
    base = Tariff.objects.prefetch_related(
        Prefetch("versions", queryset=TariffVersion.objects.order_by("effective_from")), "tou_periods"
    )
    if _is_machine_or_staff(request):
        return base.all()
    consumer = _consumer(request)
    return base.filter(accounts__customer__user=consumer).distinct() if consumer else base.none()
