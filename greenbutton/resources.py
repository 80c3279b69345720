"""The ESPI REST resources of Green Button Connect My Data (GET, Atom XML, bearer token).

A token reads only its own subscription: any other subscription id, and any UsagePoint,
MeterReading, IntervalBlock, ReadingType or UsageSummary outside it, answers 404 (never confirming
that it exists); a resource of a function block that was not granted answers 403.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.dateparse import parse_datetime

from greenbutton import documents, espi
from greenbutton.documents import Access, Filters
from greenbutton.oauth import error_response, espi_token_required
from greenbutton.scopes import FB_INTERVALS, FB_SUMMARY

ATOM_XML = "application/atom+xml"
FILTER_PARAMETERS = ("published-min", "published-max", "updated-min", "updated-max")


class BadParameter(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _filters(request: HttpRequest) -> Filters:
    unknown = sorted(set(request.GET) - set(FILTER_PARAMETERS))
    if unknown:
        raise BadParameter(unknown[0], f"Unknown query parameter {unknown[0]!r}; use {', '.join(FILTER_PARAMETERS)}.")
    values: dict[str, dt.datetime | None] = {}
    for name in FILTER_PARAMETERS:
        text = request.GET.get(name)
        moment = parse_datetime(text) if text else None
        if text and (moment is None or moment.tzinfo is None):
            raise BadParameter(name, f"{name} must be an xs:dateTime with its zone, like 2026-11-01T00:00:00Z.")
        values[name.replace("-", "_")] = moment
    return Filters(**values)


def _atom(body: bytes) -> HttpResponse:
    return HttpResponse(body, content_type=ATOM_XML)


class _NotGranted(Exception):
    pass


def espi_resource(view: Callable[..., bytes]) -> Callable[..., HttpResponse]:
    """GET only, a Connect token, the subscription in the path must be the token's, errors in the API's shape."""

    @espi_token_required
    def authorized(request: HttpRequest, access: Access, *args: Any, **kwargs: Any) -> HttpResponse:
        subscription_pk = kwargs.pop("subscription_pk", None)
        if subscription_pk is not None and subscription_pk != access.subscription.pk:
            return error_response(404, "not_found", "No such subscription for this token.")
        try:
            return _atom(view(request, access, *args, **kwargs))
        except BadParameter as bad:
            return error_response(400, "invalid", bad.message, field=bad.field)
        except Http404 as missing:
            return error_response(404, "not_found", str(missing) or "Not found.")
        except _NotGranted as refused:
            return error_response(403, "permission_denied", str(refused))

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "GET":  # the resources are read-only for third parties
            response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here; use GET.")
            response["Allow"] = "GET"
            return response
        return authorized(request, *args, **kwargs)

    return wrapper


def _need(access: Access, block: int, what: str) -> None:
    if not access.scope.has(block):
        raise _NotGranted(f"This subscription does not grant {what} (ESPI function block {block}).")


@espi_resource
def batch_subscription(request: HttpRequest, access: Access) -> bytes:
    """Batch/Subscription/{id}: everything the subscription shares, in one feed."""
    return documents.batch(access, _filters(request))


@espi_resource
def usage_points(request: HttpRequest, access: Access) -> bytes:
    """Subscription/{id} and Subscription/{id}/UsagePoint: the meters shared."""
    _filters(request)
    return documents.usage_points(access, self_href=request.path)


@espi_resource
def usage_point(request: HttpRequest, access: Access, meter_pk: int) -> bytes:
    root = documents.feed(access, key="one", title="UsagePoint", self_href=request.path)
    documents.add_usage_point(root, access, access.meter(meter_pk))
    return documents.single(root)


@espi_resource
def meter_readings(request: HttpRequest, access: Access, meter_pk: int) -> bytes:
    _need(access, FB_INTERVALS, "interval data")
    shared = access.meter(meter_pk)
    root = documents.feed(access, key=f"meter-readings/{meter_pk}", title="Meter readings", self_href=request.path)
    for direction in access.directions(shared):
        documents.add_meter_reading(root, access, shared, direction)
    return espi.document(root)


@espi_resource
def meter_reading(request: HttpRequest, access: Access, meter_pk: int, reading: int) -> bytes:
    _need(access, FB_INTERVALS, "interval data")
    shared = access.meter(meter_pk)
    root = documents.feed(access, key="one", title="MeterReading", self_href=request.path)
    documents.add_meter_reading(root, access, shared, access.direction(shared, reading))
    return documents.single(root)


@espi_resource
def interval_blocks(request: HttpRequest, access: Access, meter_pk: int, reading: int) -> bytes:
    _need(access, FB_INTERVALS, "interval data")
    filters = _filters(request)
    shared = access.meter(meter_pk)
    direction = access.direction(shared, reading)
    root = documents.feed(
        access, key=f"blocks/{meter_pk}/{reading}", title=f"{direction.title}: interval blocks", self_href=request.path
    )
    documents.add_interval_blocks(root, access, shared, direction, filters)
    return espi.document(root)


@espi_resource
def interval_block(request: HttpRequest, access: Access, meter_pk: int, reading: int, day: str) -> bytes:
    _need(access, FB_INTERVALS, "interval data")
    try:
        one_day = dt.date(int(day[:4]), int(day[4:6]), int(day[6:8])) if len(day) == 8 else None
    except ValueError as error:
        raise Http404("IntervalBlock ids are local days, YYYYMMDD") from error
    if one_day is None:
        raise Http404("IntervalBlock ids are local days, YYYYMMDD")
    shared = access.meter(meter_pk)
    root = documents.feed(access, key="one", title="IntervalBlock", self_href=request.path)
    documents.add_interval_blocks(root, access, shared, access.direction(shared, reading), Filters(), only_day=one_day)
    return documents.single(root)


@espi_resource
def usage_summaries(request: HttpRequest, access: Access, meter_pk: int) -> bytes:
    _need(access, FB_SUMMARY, "usage summaries")
    filters = _filters(request)
    shared = access.meter(meter_pk)
    root = documents.feed(access, key=f"summaries/{meter_pk}", title="Usage summaries", self_href=request.path)
    documents.add_usage_summaries(root, access, shared, filters)
    return espi.document(root)


@espi_resource
def usage_summary(request: HttpRequest, access: Access, meter_pk: int, summary_pk: int) -> bytes:
    _need(access, FB_SUMMARY, "usage summaries")
    shared = access.meter(meter_pk)
    root = documents.feed(access, key="one", title="UsageSummary", self_href=request.path)
    documents.add_usage_summaries(root, access, shared, Filters(), only_pk=summary_pk)
    return documents.single(root)


@espi_resource
def reading_types(request: HttpRequest, access: Access) -> bytes:
    _need(access, FB_INTERVALS, "interval data")
    return documents.reading_types(access)


@espi_resource
def reading_type(request: HttpRequest, access: Access, reading_type: tuple[int, int]) -> bytes:
    _need(access, FB_INTERVALS, "interval data")
    meter_pk, reading = reading_type
    shared = access.meter(meter_pk)
    root = documents.feed(access, key="one", title="ReadingType", self_href=request.path)
    documents.add_reading_type(root, access, shared, access.direction(shared, reading))
    return documents.single(root)


@espi_resource
def local_time_parameters(request: HttpRequest, access: Access, ltp_pk: int | None = None) -> bytes:
    if ltp_pk is not None and ltp_pk != documents.LTP_ID:
        raise Http404("No such LocalTimeParameters")
    root = documents.feed(access, key="local-time", title="Local time parameters", self_href=request.path)
    documents.add_local_time(root, access)
    return documents.single(root) if ltp_pk is not None else espi.document(root)
