"""Operations: anomalies, outage incidents, who is out, silent meters and ingest health, for staff
and machine clients (people need the operator or billing role)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from ingest import selectors as ingest
from mdms.core.roles import Role
from monitoring import selectors
from monitoring.models import IncidentMeter, OutageIncident
from portal.api import scoping
from portal.api.auth import Scope
from portal.api.base import ApiView
from portal.api.filters import IncidentFilter
from portal.api.serializers import (
    AnomalyCountSerializer,
    AnomalySerializer,
    IncidentSerializer,
    IngestStatsSerializer,
    OutNowSerializer,
    SilentMeterSerializer,
)

STAFF = frozenset({Role.OPERATOR, Role.BILLING})


class AnomalyQuery(serializers.Serializer[Any]):
    feeder = serializers.CharField(required=False, help_text="A feeder code.")
    region = serializers.CharField(required=False, help_text="A region code.")
    meter = serializers.CharField(required=False, help_text="A meter serial.")
    include_info = serializers.BooleanField(default=False, help_text="Also the informational ones.")


class AnomalyCountQuery(serializers.Serializer[Any]):
    by = serializers.ChoiceField(choices=sorted(selectors.ANOMALY_GROUPS), default="feeder")


class OperationsView(ApiView):
    """Grid-wide operations data: people need the operator or billing role, tokens cis_read."""

    scopes = {"*": Scope.CIS_READ}
    roles = STAFF
    filter_backends: Any = []


class ActiveAnomalyList(OperationsView, generics.ListAPIView[Any]):
    """Anomalies of the last 24 hours across the grid, newest first."""

    serializer_class = AnomalySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("feeder", str),
            OpenApiParameter("region", str),
            OpenApiParameter("meter", str),
            OpenApiParameter("include_info", bool),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        wanted = self.query(AnomalyQuery)
        rows = selectors.active_anomalies_named(
            feeder_code=wanted.get("feeder"),
            region_code=wanted.get("region"),
            meter_serial=wanted.get("meter"),
            include_info=wanted["include_info"],
        )
        return self.page_of(rows, AnomalySerializer)


class AnomalyCountList(OperationsView, generics.ListAPIView[Any]):
    """Anomalies of the last 24 hours counted per region, feeder or meter (ids) and severity, most first."""

    serializer_class = AnomalyCountSerializer

    @extend_schema(parameters=[OpenApiParameter("by", str, enum=sorted(selectors.ANOMALY_GROUPS))])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        field = selectors.ANOMALY_GROUPS[self.query(AnomalyCountQuery)["by"]]
        rows = [
            {"group": row[field], "severity": row["severity"], "count": row["count"]}
            for row in selectors.anomaly_counts(group_by=field)
        ]
        return self.page_of(rows, AnomalyCountSerializer)


class OutNowList(OperationsView, generics.ListAPIView[IncidentMeter]):
    """Meters out right now (last gasp or silence), longest out first, with their incident."""

    serializer_class = OutNowSerializer

    def get_queryset(self) -> QuerySet[IncidentMeter]:
        return selectors.meters_out_now()


class SilentMeterList(OperationsView, generics.ListAPIView[Any]):
    """Active meters not heard from for MONITORING_SILENT_INTERVALS intervals, longest silent first."""

    serializer_class = SilentMeterSerializer

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.page_of(selectors.silent_meters(), SilentMeterSerializer)


class IngestStats(OperationsView, generics.GenericAPIView[Any]):
    """Ingest health: the counters shared by every worker, dead letters by reason over the last
    24 hours, and the newest dead letters."""

    serializer_class = IngestStatsSerializer
    pagination_class = None

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        health = ingest.ingest_health()
        body = {
            "counters": health["counters"],
            "dead_letters_last_24h_by_reason": health["dead_letters_by_reason"],
            "recent_dead_letters": [ingest.dead_letter_preview(letter) for letter in health["recent_dead_letters"]],
        }
        return Response(IngestStatsSerializer(body).data)


class IncidentViewSet(ApiView, viewsets.ReadOnlyModelViewSet[OutageIncident]):
    """Outage incidents, newest first: open ones have meters still out."""

    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter
    ordering_fields = ["started_at", "affected_customers"]
    scopes = {"*": Scope.CIS_READ}
    roles = STAFF

    def get_queryset(self) -> QuerySet[OutageIncident]:
        return scoping.incidents(self.request).order_by("-started_at", "-id")
