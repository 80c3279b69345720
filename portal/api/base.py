"""What every API view shares: authentication, scoped access, throttles, pagination, filters, parsers."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from portal.api.auth import BearerTokenAuthentication, ScopedAccess
from portal.api.parsers import JSONParser
from portal.api.throttling import AnonThrottle, PersonThrottle, TokenThrottle


class ApiPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int | None:
        """DRF falls back to the default on a bad page_size (`null`, `-3`); a CIS would never notice."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ValidationError(
                {self.page_size_query_param: f"A whole number from 1 to {self.max_page_size}."}, code="invalid"
            )
        return min(size, self.max_page_size)


# Query parameters every list understands besides its filters.
COMMON_PARAMETERS = frozenset({"page", "page_size", "format"})


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, refusing what it would silently ignore: unknown parameters and empty filter values.

    A misspelt filter (`serail=`) would otherwise return the whole list as if it had matched.
    """

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            known = set(filterset_class.base_filters) | COMMON_PARAMETERS
            if any(issubclass(backend, OrderingFilter) for backend in view.filter_backends):
                known.add(OrderingFilter.ordering_param)
            for name in request.query_params:
                value = str(request.query_params.get(name, ""))
                if name not in known:
                    wanted = ", ".join(sorted(filterset_class.base_filters))
                    raise ValidationError(
                        {name: f"Unknown parameter {name!r}; this list filters by {wanted}."}, code="unknown_parameter"
                    )
                if name in filterset_class.base_filters and not value.strip():
                    raise ValidationError({name: "Give a value, or leave the parameter out."}, code="blank")
        return super().filter_queryset(request, queryset, view)


class StrictOrderingFilter(OrderingFilter):
    """DRF's ordering, with a 400 for fields it cannot order by (DRF drops them without a word)."""

    def remove_invalid_fields(self, queryset: QuerySet[Any], fields: Any, view: Any, request: Request) -> list[str]:
        valid = super().remove_invalid_fields(queryset, fields, view, request)
        invalid = [term for term in fields if term not in valid]
        if invalid or not fields:
            allowed = ", ".join(name for name, _label in self.get_valid_fields(queryset, view, {"request": request}))
            shown = ", ".join(invalid) or "(empty)"
            raise ValidationError(
                {self.ordering_param: f"Cannot order by {shown}; order by {allowed} (prefix - for descending)."},
                code="invalid_ordering",
            )
        return valid


class ApiView:
    """Mixed into every API view. `scopes` maps actions (or HTTP methods) to the scope they need."""

    # Session first would make DRF answer 403 instead of 401 to a request with no credentials.
    authentication_classes: Any = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes: Any = [ScopedAccess]
    throttle_classes: Any = [TokenThrottle, PersonThrottle, AnonThrottle]
    pagination_class: Any = ApiPagination
    parser_classes: Any = [JSONParser, FormParser, MultiPartParser]
    filter_backends: Any = [StrictFilterBackend, StrictOrderingFilter]
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
