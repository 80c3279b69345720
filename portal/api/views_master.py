"""Customers, accounts and premises: read-only master data for the CIS and the account holder."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import viewsets

from mdms.core.models import Account, Customer, Premise
from portal.api import scoping
from portal.api.auth import Scope
from portal.api.base import ApiView
from portal.api.filters import AccountFilter, CustomerFilter, PremiseFilter
from portal.api.serializers import AccountSerializer, CustomerSerializer, PremiseSerializer


class CustomerViewSet(ApiView, viewsets.ReadOnlyModelViewSet[Customer]):
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    ordering_fields = ["name", "created_at"]
    scopes = {"*": Scope.CIS_READ}

    def get_queryset(self) -> QuerySet[Customer]:
        return scoping.customers(self.request).order_by("name", "id")


class AccountViewSet(ApiView, viewsets.ReadOnlyModelViewSet[Account]):
    serializer_class = AccountSerializer
    filterset_class = AccountFilter
    ordering_fields = ["number", "move_in_date", "bill_cycle_day"]
    scopes = {"*": Scope.CIS_READ}

    def get_queryset(self) -> QuerySet[Account]:
        return scoping.accounts(self.request).order_by("number")


class PremiseViewSet(ApiView, viewsets.ReadOnlyModelViewSet[Premise]):
    serializer_class = PremiseSerializer
    filterset_class = PremiseFilter
    ordering_fields = ["id", "postcode"]
    scopes = {"*": Scope.CIS_READ}

    def get_queryset(self) -> QuerySet[Premise]:
        return scoping.premises(self.request).order_by("id")
