"""One error format for the whole API: {"error": {"code", "message", "field"}}.

DRF's exceptions, Django's Http404/PermissionDenied/ValidationError raised by services, bad JSON,
bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (DRF reads JSON through request.body, which checks it),
throttling and unknown routes all answer this way, with the right status.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _first(detail: Any, path: tuple[str, ...] = ()) -> tuple[str, str, str | None]:
    """The first error in a DRF detail (a string, list or dict, nested), with its field path."""
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return _first(value, path if key in ("non_field_errors", "detail") else (*path, str(key)))
    if isinstance(detail, list) and detail:
        return _first(detail[0], path)
    code = getattr(detail, "code", None) or "invalid"
    return str(code), str(detail), ".".join(path) or None


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, RecursionError):
        # Only input nested beyond what any code here walks gets this deep (portal.api.parsers bounds
        # JSON bodies; this covers any other way in).
        return exceptions.ParseError("The request is nested too deeply.")
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return exceptions.ValidationError(detail)
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's 500 handling (and its logging) takes it
    code, message, field = _first(exc.detail)
    if not isinstance(exc, exceptions.ValidationError):
        field = None  # only validation errors are about a field
    response.data = {"error": {"code": code, "message": message, "field": field}}
    return response


@extend_schema(exclude=True)
class NotFoundView(APIView):
    """Any path under /api/ that no route takes: a 404 in the API's format, not Django's HTML page."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def http_method_not_allowed(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        raise exceptions.NotFound("No such API route.")

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise exceptions.NotFound("No such API route.")
