"""Billing: determinants of a bill-cycle date, bills with line items and versions, on-demand reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from billing.billable_usage import accounts_due_query, bill_intervals
from billing.determinants import cycle_period
from billing.models import Bill, OnDemandRead
from billing.on_demand_reads import on_demand_read_complete, on_demand_read_request
from billing.outbox import determinant_rows
from billing.selectors import pending_accounts, released_in_batch
from mdms.core.roles import Role
from portal.api import scoping
from portal.api.auth import Scope, person_of, token_of
from portal.api.base import ApiView
from portal.api.filters import BillFilter, OnDemandReadFilter
from portal.api.ranges import QUALITY_HELP, QualityFilterField
from portal.api.serializers import (
    BillDetailSerializer,
    BillIntervalSerializer,
    BillSerializer,
    DeterminantRowSerializer,
    OnDemandReadRequestSerializer,
    OnDemandReadSerializer,
    PendingDeterminantSerializer,
)


class DeterminantsQuery(serializers.Serializer[Any]):
    date = serializers.DateField(help_text="The billing date: accounts whose bill-cycle day it is.")
    batch = serializers.IntegerField(
        required=False, min_value=1, help_text="Only the accounts released in this delivery batch."
    )

    def validate_date(self, value: dt.date) -> dt.date:
        if value.day > 28:
            raise serializers.ValidationError("bill-cycle days run from 1 to 28")
        try:
            cycle_period(value)  # the month before: none before year 1
        except ValueError as exc:
            raise serializers.ValidationError("no billing period ends on this date", code="out_of_range") from exc
        return value


class DeterminantList(ApiView, generics.ListAPIView[Any]):
    """The determinants of every account billed on a date (its bill-cycle day), in pages."""

    serializer_class = DeterminantRowSerializer
    scopes = {"*": Scope.BILLING}
    filter_backends: Any = []

    @extend_schema(
        parameters=[
            OpenApiParameter("date", str, required=True, description="YYYY-MM-DD, day 1..28"),
            OpenApiParameter(
                "batch", int, required=False, description="a delivery batch (1 = complete at the lead time)"
            ),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = self.query(DeterminantsQuery)
        run_date = query["date"]
        # Paged by PostgreSQL (a count and one page of accounts): a cycle date of a large utility has
        # thousands of accounts, and reading them all for each page made a walk quadratic.
        accounts = accounts_due_query(run_date)
        if "batch" in query:
            accounts = accounts.filter(pk__in=released_in_batch(run_date, query["batch"]))
        page = self.paginate_queryset(accounts)
        assert page is not None
        return self.get_paginated_response(determinant_rows(run_date, page))


class PendingDeterminantList(ApiView, generics.ListAPIView[Any]):
    """The accounts of a billing date still waiting for a read fetched from their meter."""

    serializer_class = PendingDeterminantSerializer
    scopes = {"*": Scope.BILLING}
    filter_backends: Any = []

    @extend_schema(parameters=[OpenApiParameter("date", str, required=True, description="YYYY-MM-DD, day 1..28")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        run_date = self.query(DeterminantsQuery)["date"]
        page = self.paginate_queryset(pending_accounts(run_date))  # type: ignore[arg-type]
        assert page is not None
        return self.get_paginated_response(PendingDeterminantSerializer(page, many=True).data)


class BillViewSet(ApiView, viewsets.ReadOnlyModelViewSet[Bill]):
    """Bills, every version kept: a re-bill adds version n+1 and marks it current."""

    filterset_class = BillFilter
    ordering_fields = ["period_start", "created_at", "total"]
    scopes = {"*": Scope.BILLING}
    roles = frozenset({Role.CONSUMER, Role.BILLING})  # consumers see their own bills

    def get_queryset(self) -> QuerySet[Bill]:
        return scoping.bills(self.request).order_by("-period_start", "account__number", "-version")

    def get_serializer_class(self) -> Any:
        return BillDetailSerializer if self.action == "retrieve" else BillSerializer


class BillIntervalsQuery(serializers.Serializer[Any]):
    quality = QualityFilterField(required=False, help_text=QUALITY_HELP)


class BillIntervalList(ApiView, generics.ListAPIView[Any]):
    """Every interval behind a bill's energy: meter, energy as metered and as billed, its quality code
    and source, who edited it and why, or the VEE rule that questioned it (billing staff)."""

    serializer_class = BillIntervalSerializer
    scopes = {"*": Scope.BILLING}
    filter_backends: Any = []

    @extend_schema(parameters=[OpenApiParameter("quality", str, description=QUALITY_HELP)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = self.query(BillIntervalsQuery)
        bill = scoping.bills(request).select_related("account", "final_read").filter(pk=kwargs["pk"]).first()
        if bill is None:
            raise NotFound("No such bill.")
        rows = [
            {
                "meter": row.serial,
                "start": row.start,
                "end": row.interval.usage.ts,
                "import_kwh": row.interval.usage.import_kwh,
                "export_kwh": row.interval.usage.export_kwh,
                "multiplier": row.multiplier,
                "billed_import_kwh": row.billed_import_kwh,
                "quality": row.interval.usage.quality,
                "espi_quality": row.interval.usage.espi_quality,
                "source": row.interval.usage.source,
                "estimate_method": row.interval.usage.estimate_method,
                "edited_by": row.interval.edited_by,
                "edit_reason": row.interval.edit_reason,
                "vee_rule": row.interval.flag_rule,
                "exception": row.interval.exception_id,
            }
            for row in bill_intervals(bill, quality=query.get("quality"))
        ]
        page = self.paginate_queryset(rows)  # type: ignore[arg-type]
        assert page is not None
        return self.get_paginated_response(BillIntervalSerializer(page, many=True).data)


class OnDemandReadViewSet(ApiView, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[OnDemandRead]):
    """Off-cycle reads: request one (the meter is asked over MQTT), then poll its status."""

    serializer_class = OnDemandReadSerializer
    filterset_class = OnDemandReadFilter
    ordering_fields = ["requested_at"]
    scopes = {"*": Scope.BILLING}

    def get_queryset(self) -> QuerySet[OnDemandRead]:
        return scoping.on_demand_reads(self.request).order_by("-requested_at", "-id")

    @extend_schema(
        request=OnDemandReadRequestSerializer,
        responses={201: OnDemandReadSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = OnDemandReadRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        meter = scoping.meters(request).filter(serial=form.validated_data["meter"]).first()
        if meter is None:
            raise ValidationError({"meter": "No such meter."}, code="does_not_exist")
        account = None
        if form.validated_data.get("account"):
            account = scoping.accounts(request).filter(number=form.validated_data["account"]).first()
            if account is None:
                raise ValidationError({"account": "No such account."}, code="does_not_exist")
        read = on_demand_read_request(
            meter=meter,
            purpose=form.validated_data["purpose"],
            account=account,
            requested_by=person_of(request),
            audit_actor=token_of(request),
        )
        return Response(OnDemandReadSerializer(read).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One read; a pending read picks up the meter's reply if it has arrived."""
        read = self.get_object()
        if read.status == OnDemandRead.Status.PENDING:
            on_demand_read_complete(read=read)
        return Response(OnDemandReadSerializer(read).data)
