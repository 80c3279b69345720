"""Operations: active anomalies and outage incidents, for staff and machine clients."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from mdms.core.models import Feeder, Region
from mdms.core.roles import Role
from monitoring import selectors
from monitoring.models import OutageIncident
from portal.api import scoping
from portal.api.auth import Scope
from portal.api.base import ApiView
from portal.api.filters import IncidentFilter
from portal.api.serializers import AnomalySerializer, IncidentSerializer

STAFF = frozenset({Role.OPERATOR, Role.BILLING})


class AnomalyQuery(serializers.Serializer[Any]):
    feeder = serializers.CharField(required=False, help_text="A feeder code.")
    region = serializers.CharField(required=False, help_text="A region code.")
    include_info = serializers.BooleanField(default=False, help_text="Also the informational ones.")


class ActiveAnomalyList(ApiView, generics.ListAPIView[Any]):
    """Anomalies of the last 24 hours across the grid, newest first."""

    serializer_class = AnomalySerializer
    scopes = {"*": Scope.CIS_READ}
    roles = STAFF
    filter_backends: Any = []

    @extend_schema(
        parameters=[
            OpenApiParameter("feeder", str),
            OpenApiParameter("region", str),
            OpenApiParameter("include_info", bool),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = AnomalyQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        feeder_pk = region_pk = None
        if "feeder" in wanted:
            feeder_pk = Feeder.objects.filter(code=wanted["feeder"]).values_list("pk", flat=True).first() or -1
        if "region" in wanted:
            region_pk = Region.objects.filter(code=wanted["region"]).values_list("pk", flat=True).first() or -1
        rows = selectors.active_anomalies(feeder_pk=feeder_pk, region_pk=region_pk, include_info=wanted["include_info"])
        page = self.paginate_queryset(rows)  # type: ignore[arg-type]
        return self.get_paginated_response(AnomalySerializer(page, many=True).data)


class IncidentViewSet(ApiView, viewsets.ReadOnlyModelViewSet[OutageIncident]):
    """Outage incidents, newest first: open ones have meters still out."""

    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter
    ordering_fields = ["started_at", "affected_customers"]
    scopes = {"*": Scope.CIS_READ}
    roles = STAFF

    def get_queryset(self) -> QuerySet[OutageIncident]:
        return scoping.incidents(self.request).order_by("-started_at", "-id")
