"""What every API view shares: authentication, scoped access, throttles, pagination, filters, parsers."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.authentication import SessionAuthentication
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from portal.api.auth import BearerTokenAuthentication, ScopedAccess
from portal.api.throttling import AnonThrottle, PersonThrottle, TokenThrottle


class ApiPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ApiView:
    """Mixed into every API view. `scopes` maps actions (or HTTP methods) to the scope they need."""

    # Session first would make DRF answer 403 instead of 401 to a request with no credentials.
    authentication_classes: Any = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes: Any = [ScopedAccess]
    throttle_classes: Any = [TokenThrottle, PersonThrottle, AnonThrottle]
    pagination_class: Any = ApiPagination
    parser_classes: Any = [JSONParser, FormParser, MultiPartParser]
    filter_backends: Any = [DjangoFilterBackend, OrderingFilter]
    scopes: dict[str, str] = {}

    def query(self, form: type[BaseSerializer[Any]]) -> dict[str, Any]:
        """The request's query string checked by a serializer: a 400 naming the field if it is wrong."""
        view: Any = self
        checked = form(data=view.request.query_params)
        checked.is_valid(raise_exception=True)
        return dict(checked.validated_data)

    def page_of(self, rows: Any, serializer: type[BaseSerializer[Any]]) -> Response:
        """One page of rows (a list or a queryset), serialized, with the pagination links."""
        view: Any = self
        page = view.paginate_queryset(rows)
        return view.get_paginated_response(serializer(page, many=True).data)  # type: ignore[no-any-return]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's initial() with the throttles before the permission check: callers that are refused
        (no credentials, wrong scope) spend their budget too, instead of probing for free."""
        view: Any = self
        view.format_kwarg = view.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = view.perform_content_negotiation(request)
        request.version, request.versioning_scheme = view.determine_version(request, *args, **kwargs)
        view.perform_authentication(request)
        view.check_throttles(request)
        view.check_permissions(request)
