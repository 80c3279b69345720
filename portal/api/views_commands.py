"""Commands to meters: request one (read, disconnect, reconnect, time_sync, demand_reset), follow it,
list them by meter, kind and status, cancel one that has not left yet."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from commands.models import MeterCommand
from commands.services import command_cancel, command_request
from mdms.core.roles import Role
from portal.api import scoping
from portal.api.auth import Scope, person_of, token_of
from portal.api.base import ApiView
from portal.api.filters import MeterCommandFilter
from portal.api.serializers import MeterCommandRequestSerializer, MeterCommandSerializer

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="The same key from the same client is one command: a repeat answers 200 with the first.",
)  # fmt: skip


class NotQueued(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "Only a queued command can be cancelled."


class MeterCommandViewSet(ApiView, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[MeterCommand]):
    """Commands are asynchronous: a request answers 201 with the queued command; poll it for its status."""

    serializer_class = MeterCommandSerializer
    filterset_class = MeterCommandFilter
    ordering_fields = ["created_at", "priority"]
    scopes = {"*": Scope.COMMANDS}
    roles = frozenset({Role.OPERATOR, Role.BILLING})

    def get_queryset(self) -> QuerySet[MeterCommand]:
        return scoping.meter_commands(self.request).order_by("-created_at", "-id")

    @extend_schema(
        request=MeterCommandRequestSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: MeterCommandSerializer, 200: MeterCommandSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = MeterCommandRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        meter = scoping.meters(request).filter(serial=data["meter"]).first()
        if meter is None:
            raise ValidationError({"meter": "No such meter."}, code="does_not_exist")
        key = request.headers.get("Idempotency-Key", "") or data["idempotency_key"]
        if data["idempotency_key"] and key != data["idempotency_key"]:
            raise ValidationError({"idempotency_key": "differs from the Idempotency-Key header"})
        # A service's ValidationError (a relay kind without a reason, a key reused) is a 400 in the one shape.
        command, created = command_request(
            meter=meter,
            kind=data["kind"],
            priority=data["priority"],
            not_before=data.get("not_before"),
            deadline=data.get("deadline"),
            reason=data["reason"],
            requested_by=person_of(request),
            token=token_of(request),
            idempotency_key=key,
        )
        command = self.get_queryset().get(pk=command.pk)
        return Response(
            MeterCommandSerializer(command).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(request=None, responses={200: MeterCommandSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a queued command; a command already sent cannot be recalled (409)."""
        command = self.get_object()
        if not command_cancel(command=command, user=person_of(request), token=token_of(request)):
            raise NotQueued(f"the command is {command.status}: only a queued one can be cancelled")
        return Response(MeterCommandSerializer(self.get_queryset().get(pk=command.pk)).data)
