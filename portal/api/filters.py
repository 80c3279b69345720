"""List filters. Related objects are filtered by plain ids or codes, never loaded by id: the
queryset being filtered is already the caller's own, so a foreign id simply matches nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters as filters
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from billing.models import Bill, OnDemandRead
from commands.models import MeterCommand
from mdms.core.models import Account, Customer, Meter, Premise, Tariff
from monitoring.models import OutageIncident
from portal.api.ranges import to_utc


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    """Compares in UTC: PostgreSQL refuses some offsets ISO 8601 allows (beyond ±15:59)."""

    def filter(self, qs: QuerySet[Any], value: dt.datetime | None) -> QuerySet[Any]:
        if value is None:
            return qs
        try:
            value = to_utc(value)
        except ValueError as exc:
            raise ValidationError({self._parameter(): f"Date and time {exc}."}, code="out_of_range") from exc
        return super().filter(qs, value)

    def _parameter(self) -> str:
        """The query parameter's name (started_from), not the model field it filters (started_at)."""
        for name, candidate in self.parent.filters.items():
            if candidate is self:
                return str(name)
        return str(self.field_name)


class MeterFilter(filters.FilterSet):
    serial = filters.CharFilter(lookup_expr="iexact")
    premise = filters.NumberFilter(field_name="premise_id")
    feeder = filters.CharFilter(field_name="premise__feeder__code")
    region = filters.CharFilter(field_name="premise__feeder__region__code")

    class Meta:
        model = Meter
        fields = ["serial", "status", "premise", "feeder", "region", "has_solar"]


class CustomerFilter(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    email = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Customer
        fields = ["name", "email"]


class AccountFilter(filters.FilterSet):
    number = filters.CharFilter(lookup_expr="iexact")
    customer = filters.NumberFilter(field_name="customer_id")
    premise = filters.NumberFilter(field_name="premise_id")
    tariff = filters.CharFilter(field_name="tariff__code")
    active = filters.BooleanFilter(field_name="move_out_date", lookup_expr="isnull")

    class Meta:
        model = Account
        fields = ["number", "customer", "premise", "tariff", "bill_cycle_day", "active"]


class PremiseFilter(filters.FilterSet):
    feeder = filters.CharFilter(field_name="feeder__code")
    region = filters.CharFilter(field_name="feeder__region__code")
    postcode = filters.CharFilter(lookup_expr="iexact")
    city = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Premise
        fields = ["feeder", "region", "postcode", "city"]


class BillFilter(filters.FilterSet):
    account = filters.CharFilter(field_name="account__number")
    period_start_from = filters.DateFilter(field_name="period_start", lookup_expr="gte")
    period_start_before = filters.DateFilter(field_name="period_start", lookup_expr="lt")

    class Meta:
        model = Bill
        fields = ["account", "kind", "is_current", "period_start_from", "period_start_before"]


class OnDemandReadFilter(filters.FilterSet):
    meter = filters.CharFilter(field_name="meter__serial")
    account = filters.CharFilter(field_name="account__number")

    class Meta:
        model = OnDemandRead
        fields = ["meter", "account", "status", "purpose"]


class MeterCommandFilter(filters.FilterSet):
    meter = filters.CharFilter(field_name="meter__serial")
    created_from = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = MeterCommand
        fields = ["meter", "kind", "status", "created_from", "created_before"]


class IncidentFilter(filters.FilterSet):
    feeder = filters.CharFilter(field_name="feeder__code")
    region = filters.CharFilter(field_name="region__code")
    started_from = UtcDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UtcDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = OutageIncident
        fields = ["status", "feeder", "region", "started_from", "started_before"]


class TariffFilter(filters.FilterSet):
    code = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Tariff
        fields = ["code", "currency"]
