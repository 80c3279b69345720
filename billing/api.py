"""REST API for billing staff and the CIS: determinants of a bill-cycle date, on-demand reads.

Session authentication for staff with the billing role (the token-based /api/v1 is built on top
of these views later). Views stay thin: selectors and services do the work.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.billable_usage import accounts_due
from billing.determinants import cycle_period
from billing.models import OnDemandRead
from billing.on_demand_reads import on_demand_read_complete, on_demand_read_request
from billing.outbox import determinant_rows
from mdms.core.models import Account, Meter
from mdms.core.roles import Role, has_role


class IsBillingStaff(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return has_role(request.user, Role.BILLING)


class DeterminantsPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class DeterminantsQuery(serializers.Serializer[Any]):
    date = serializers.DateField(help_text="The billing date: accounts whose bill-cycle day it is.")

    def validate_date(self, value: dt.date) -> dt.date:
        if value.day > 28:
            raise serializers.ValidationError("bill-cycle days run from 1 to 28")
        try:
            cycle_period(value)  # the month before: none before year 1
        except ValueError as exc:
            raise serializers.ValidationError("no billing period ends on this date", code="out_of_range") from exc
        return value


class DeterminantsView(GenericAPIView[Account]):
    """GET ?date=YYYY-MM-DD: the determinants of every account billed on that date, in pages."""

    permission_classes = [IsAuthenticated, IsBillingStaff]
    pagination_class = DeterminantsPagination

    def get(self, request: Request) -> Response:
        query = DeterminantsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        run_date: dt.date = query.validated_data["date"]
        accounts = accounts_due(run_date)
        page = self.paginate_queryset(accounts)  # type: ignore[arg-type]
        assert page is not None
        return self.get_paginated_response(determinant_rows(run_date, page))


# What an on-demand read shows over any API (this one and /api/v1/reads/).
READ_FIELDS = [
    "id",
    "command_id",
    "meter",
    "account",
    "purpose",
    "status",
    "requested_at",
    "timeout_at",
    "completed_at",
    "read_at",
    "register_import_kwh",
    "register_export_kwh",
    "estimated",
    "time_suspect",
    "note",
]


class OnDemandReadSerializer(serializers.ModelSerializer[OnDemandRead]):
    meter = serializers.SlugRelatedField(slug_field="serial", queryset=Meter.objects.all())
    account = serializers.SlugRelatedField(
        slug_field="number", queryset=Account.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = OnDemandRead
        fields = READ_FIELDS
        read_only_fields = [f for f in fields if f not in ("meter", "account", "purpose")]


class OnDemandReadListView(ListAPIView[OnDemandRead]):
    """GET: the reads, newest first (?status= to filter). POST {meter, purpose, account?}: request one."""

    permission_classes = [IsAuthenticated, IsBillingStaff]
    serializer_class = OnDemandReadSerializer

    def get_queryset(self) -> Any:
        queryset = OnDemandRead.objects.select_related("meter", "account")
        wanted = self.request.query_params.get("status")
        return queryset.filter(status=wanted) if wanted else queryset

    def post(self, request: Request) -> Response:
        serializer = OnDemandReadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        read = on_demand_read_request(
            meter=serializer.validated_data["meter"],
            purpose=serializer.validated_data.get("purpose", OnDemandRead.Purpose.CHECK),
            account=serializer.validated_data.get("account"),
            requested_by=request.user,  # type: ignore[arg-type]
        )
        return Response(OnDemandReadSerializer(read).data, status=status.HTTP_201_CREATED)


class OnDemandReadDetailView(APIView):
    """GET: one read; a pending read picks up the meter's reply if it has arrived."""

    permission_classes = [IsAuthenticated, IsBillingStaff]

    def get(self, request: Request, pk: int) -> Response:
        read = get_object_or_404(OnDemandRead.objects.select_related("meter", "account"), pk=pk)
        if read.status == OnDemandRead.Status.PENDING:
            on_demand_read_complete(read=read)
        return Response(OnDemandReadSerializer(read).data)
