"""Meters: register (MQTT password or client certificate shown once), list, detail, disable, enable,
a new certificate; and each meter's readings (raw, hourly, daily, estimates marked), events and
anomalies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from billing import selectors as usage
from mdms.core import services
from mdms.core.audit import audit_record
from mdms.core.models import Meter
from mdms.core.models_api import AuditLog
from mdms.core.mqtt import certificates
from mdms.core.timeseries.readings import events_for_meter
from monitoring.selectors import meter_anomaly_history
from portal.api import scoping
from portal.api.auth import Scope, token_of
from portal.api.base import ApiView
from portal.api.filters import MeterFilter
from portal.api.ranges import QUALITY_HELP, ReadingsQuery, SpanQuery
from portal.api.serializers import (
    AnomalySerializer,
    EventSerializer,
    MeterCertificateIssuedSerializer,
    MeterExchangedSerializer,
    MeterExchangeSerializer,
    MeterRegisteredSerializer,
    MeterRegisterSerializer,
    MeterSerializer,
    ReadingRowSerializer,
)

READING_PARAMETERS = [
    OpenApiParameter(
        "resolution", str, enum=["raw", "hour", "day"], description="raw <= 31 d, hour <= 366 d, day <= 5 y"
    ),
    OpenApiParameter("start", dt.datetime, required=True),
    OpenApiParameter("end", dt.datetime, required=True),
    OpenApiParameter("quality", str, description=QUALITY_HELP + " Raw resolution only."),
]
SPAN_PARAMETERS = [OpenApiParameter("start", dt.datetime), OpenApiParameter("end", dt.datetime)]


class NoCertificateAuthority(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Meter certificates are not configured on this server."
    default_code = "no_certificate_authority"


def _certificate_body(meter: Meter, issued: certificates.IssuedCertificate) -> dict[str, Any]:
    return {
        "serial": meter.serial,
        "serial_number": issued.serial_hex,
        "fingerprint_sha256": issued.fingerprint_sha256,
        "not_before": issued.not_before,
        "not_after": issued.not_after,
        "certificate_pem": issued.certificate_pem,
        "private_key_pem": issued.private_key_pem,
        "ca_certificate_pem": issued.ca_certificate_pem,
        "host": settings.MQTT_HOST,
        "port": settings.MQTT_TLS_PORT,
    }


def _actor(request: Request) -> Any:
    return token_of(request) or request.user


def reading_rows(
    meter: Meter, resolution: str, start: dt.datetime, end: dt.datetime, quality: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of [start, end) at a resolution, every one saying how much of it is estimated; raw
    intervals each with their quality code and source (only the codes in `quality`, when given)."""
    if resolution == "raw":
        step = dt.timedelta(seconds=meter.interval_s)
        return [
            {
                "start": row.ts - step,
                "end": row.ts,
                "import_kwh": row.import_kwh,
                "export_kwh": row.export_kwh,
                "estimated_import_kwh": (row.import_kwh or 0.0) if row.estimated else 0.0,
                "estimated": row.estimated,
                "edited": row.edited,
                "missing_intervals": None,
                "quality": row.quality,
                "source": row.source,
            }
            for row in usage.interval_usage(meter_pk=meter.pk, start=start, end=end, interval_s=meter.interval_s)
            if quality is None or row.quality in quality
        ]
    if resolution == "hour":
        return [
            {
                "start": row.hour_start,
                "end": row.hour_start + dt.timedelta(hours=1),
                "import_kwh": row.import_kwh,
                "export_kwh": row.export_kwh,
                "estimated_import_kwh": row.estimated_import_kwh,
                "estimated": row.estimated_import_kwh > 0,
                "edited": None,
                "missing_intervals": None,
            }
            for row in usage.hourly_usage(meter_pk=meter.pk, start=start, end=end)
        ]
    zone = usage.local_zone()
    first_day = start.astimezone(zone).date()
    end_day = max(end.astimezone(zone).date(), first_day + dt.timedelta(days=1))
    return [
        {
            "start": usage.local_midnight(row.day),
            "end": usage.local_midnight(row.day + dt.timedelta(days=1)),
            "import_kwh": row.import_kwh,
            "export_kwh": row.export_kwh,
            "estimated_import_kwh": row.estimated_import_kwh,
            "estimated": row.estimated_import_kwh > 0 or row.estimated_intervals > 0,
            "edited": None,
            "missing_intervals": row.missing_intervals,
            "quality_intervals": row.quality_intervals,
        }
        for row in usage.daily_usage(meter_pk=meter.pk, start=first_day, end=end_day)
    ]


class MeterViewSet(ApiView, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Meter]):
    serializer_class = MeterSerializer
    filterset_class = MeterFilter
    ordering_fields = ["serial", "created_at", "status"]
    scopes = {
        "*": Scope.CIS_READ,
        "create": Scope.METER_ADMIN,
        "disable": Scope.METER_ADMIN,
        "enable": Scope.METER_ADMIN,
        "certificate": Scope.METER_ADMIN,
        "exchange": Scope.METER_ADMIN,
    }

    def get_queryset(self) -> QuerySet[Meter]:
        return scoping.meters(self.request)

    @extend_schema(request=MeterRegisterSerializer, responses={201: MeterRegisteredSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Register a meter. The response holds its MQTT password: the only time it is shown."""
        form = MeterRegisterSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = {key: value for key, value in form.validated_data.items() if value is not None}
        data["nominal_frequency_hz"] = Decimal(data["nominal_frequency_hz"])
        data["interval_s"] = int(data["interval_s"])
        data["certificate"] = data.pop("credentials") == "certificate"
        try:
            meter, credentials = services.meter_register(**data)
        except certificates.CertificateError as exc:
            raise NoCertificateAuthority(str(exc)) from exc
        audit_record(actor=_actor(request), action=AuditLog.Action.METER_REGISTER, target=f"meter:{meter.serial}")
        body = {
            "meter": MeterSerializer(meter).data,
            "mqtt": {
                "username": credentials.mqtt_username,
                "password": credentials.mqtt_password,
                "host": settings.MQTT_HOST,
                "port": settings.MQTT_PORT,
                "tls": settings.MQTT_TLS,
            },
            "certificate": _certificate_body(meter, credentials.certificate) if credentials.certificate else None,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: MeterCertificateIssuedSerializer})
    @action(detail=True, methods=["post"])
    def certificate(self, request: Request, pk: str | None = None) -> Response:
        """Issue the meter a new client certificate; its previous one is revoked at the broker at once.

        The response holds the private key: the only time it is shown.
        """
        meter = self.get_object()
        if not meter.can_connect:
            raise ValidationError(
                {"status": f"The meter is {meter.status}: enable it before issuing a certificate."}, code="invalid"
            )
        try:
            issued = services.meter_issue_certificate(meter=meter)
        except certificates.CertificateError as exc:
            raise NoCertificateAuthority(str(exc)) from exc
        audit_record(
            actor=_actor(request),
            action=AuditLog.Action.METER_CERTIFICATE,
            target=f"meter:{meter.serial}",
            detail={"serial_number": issued.serial_hex},
        )
        return Response(_certificate_body(meter, issued), status=status.HTTP_201_CREATED)

    @extend_schema(request=MeterExchangeSerializer, responses={201: MeterExchangedSerializer})
    @action(detail=True, methods=["post"])
    def exchange(self, request: Request, pk: str | None = None) -> Response:
        """Exchange this meter on its premise at a moment (a field work order): both registers are
        recorded, the new meter is registered and installed, this one removed and refused at the broker.

        The response holds the new meter's MQTT password (or certificate key): the only time it is shown.
        """
        old = self.get_object()
        form = MeterExchangeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if old.premise is None:
            raise ValidationError({"meter": f"Meter {old.serial} is not installed on a premise."}, code="invalid")
        try:
            record, credentials = services.meter_exchange(
                premise=old.premise,
                old_meter=old,
                new_meter_serial=data["new_serial"],
                at=data["at"],
                old_final_register_kwh=data["old_final_register_kwh"],
                new_initial_register_kwh=data["new_initial_register_kwh"],
                work_order=data["work_order"],
                multiplier=data.get("multiplier"),
                register_digits=data.get("register_digits"),
                register_decimals=data.get("register_decimals"),
                certificate=data["credentials"] == "certificate",
                actor=_actor(request),
            )
        except certificates.CertificateError as exc:
            raise NoCertificateAuthority(str(exc)) from exc
        summary = {
            "id": record.pk,
            "premise": record.premise_id,
            "at": record.exchanged_at.isoformat(),
            "old_serial": old.serial,
            "new_serial": record.new_meter.serial,
            "old_final_register_kwh": str(record.old_final_register_kwh),
            "new_initial_register_kwh": str(record.new_initial_register_kwh),
            "work_order": record.work_order,
        }
        old.refresh_from_db()
        body = {
            "exchange": summary,
            "old_meter": MeterSerializer(old).data,
            "meter": MeterSerializer(record.new_meter).data,
            "mqtt": {
                "username": credentials.mqtt_username,
                "password": credentials.mqtt_password,
                "host": settings.MQTT_HOST,
                "port": settings.MQTT_PORT,
                "tls": settings.MQTT_TLS,
            },
            "certificate": (
                _certificate_body(record.new_meter, credentials.certificate) if credentials.certificate else None
            ),
        }
        return Response(body, status=status.HTTP_201_CREATED)

    def _set_status(self, request: Request, enable: bool) -> Response:
        meter = self.get_object()
        changed = services.meter_enable(meter=meter) if enable else services.meter_disable(meter=meter)
        if changed:
            audit_record(
                actor=_actor(request),
                action=AuditLog.Action.METER_ENABLE if enable else AuditLog.Action.METER_DISABLE,
                target=f"meter:{meter.serial}",
            )
        return Response(MeterSerializer(meter).data)

    @extend_schema(request=None, responses={200: MeterSerializer})
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk: str | None = None) -> Response:
        """Refuse the meter at the broker (its MQTT account is disabled). Idempotent."""
        return self._set_status(request, enable=False)

    @extend_schema(request=None, responses={200: MeterSerializer})
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str | None = None) -> Response:
        """Let the meter connect again. Idempotent."""
        return self._set_status(request, enable=True)

    @extend_schema(parameters=READING_PARAMETERS, responses={200: ReadingRowSerializer(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[], serializer_class=ReadingRowSerializer)
    def readings(self, request: Request, pk: str | None = None) -> Response:
        """Usage of [start, end) by interval, hour or local day; estimated energy is always marked."""
        meter = self.get_object()
        return self.page_of(reading_rows(meter, **self.query(ReadingsQuery)), ReadingRowSerializer)

    @extend_schema(parameters=SPAN_PARAMETERS, responses={200: EventSerializer(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[], serializer_class=EventSerializer)
    def events(self, request: Request, pk: str | None = None) -> Response:
        """The meter's events (power_off, power_on, tamper, ...), oldest first."""
        meter = self.get_object()
        span = self.query(SpanQuery)
        return self.page_of(events_for_meter(meter.pk, span["start"], span["end"]), EventSerializer)

    @extend_schema(parameters=SPAN_PARAMETERS, responses={200: AnomalySerializer(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[], serializer_class=AnomalySerializer)
    def anomalies(self, request: Request, pk: str | None = None) -> Response:
        """The meter's anomalies (voltage, frequency, current, ...), newest first."""
        meter = self.get_object()
        return self.page_of(meter_anomaly_history(meter_pk=meter.pk, **self.query(SpanQuery)), AnomalySerializer)
