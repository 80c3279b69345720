"""JSON for the operator dashboards: anomalies, incidents, who is out, silent meters. Operators only."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mdms.core.models import Meter
from mdms.core.roles import Role, has_role
from monitoring import selectors
from monitoring.models import OutageIncident


class IsOperator(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return has_role(request.user, Role.OPERATOR)


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    return int(value) if value and value.isdigit() else None


def _incident(incident: OutageIncident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "status": incident.status,
        "feeder": incident.feeder.code if incident.feeder else None,
        "region": incident.region.code if incident.region else None,
        "started_at": incident.started_at,
        "ended_at": incident.ended_at,
        "duration_class": incident.duration_class or incident.classify(incident.updated_at),
        "affected_meters": incident.affected_meters,
        "affected_customers": incident.affected_customers,
    }


class ActiveAnomalies(APIView):
    permission_classes = [IsOperator]

    def get(self, request: Request) -> Response:
        rows = selectors.active_anomalies(
            region_pk=_int(request, "region"),
            feeder_pk=_int(request, "feeder"),
            meter_pk=_int(request, "meter"),
            include_info=request.query_params.get("include_info") == "1",
        )
        return Response({"results": rows})


class AnomalyCounts(APIView):
    permission_classes = [IsOperator]

    def get(self, request: Request) -> Response:
        group_by = {"region": "region", "feeder": "feeder", "meter": "meter_id"}.get(
            request.query_params.get("by", "feeder"), "feeder"
        )
        return Response({"results": selectors.anomaly_counts(group_by=group_by)})


class MeterAnomalies(APIView):
    permission_classes = [IsOperator]

    def get(self, request: Request, serial: str) -> Response:
        meter = get_object_or_404(Meter, serial=serial)
        start = parse_datetime(request.query_params.get("start", "") or "")
        end = parse_datetime(request.query_params.get("end", "") or "")
        rows = selectors.meter_anomaly_history(meter_pk=meter.pk, start=start, end=end)
        return Response({"meter": meter.serial, "results": rows})


class Incidents(APIView):
    permission_classes = [IsOperator]

    def get(self, request: Request) -> Response:
        rows = selectors.incidents(status=request.query_params.get("status"), feeder_pk=_int(request, "feeder"))[:200]
        return Response({"results": [_incident(incident) for incident in rows]})


class OutNow(APIView):
    permission_classes = [IsOperator]

    def get(self, request: Request) -> Response:
        rows = [
            {
                "serial": row.meter.serial,
                "feeder": row.meter.premise.feeder.code if row.meter.premise else None,
                "out_since": row.out_since,
                "source": row.source,
                "incident": row.incident_id,
            }
            for row in selectors.meters_out_now()
        ]
        return Response({"results": rows})


class SilentMeters(APIView):
    permission_classes = [IsOperator]

    def get(self, request: Request) -> Response:
        return Response({"results": selectors.silent_meters()})
