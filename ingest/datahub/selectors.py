"""Reads of data hub pulls for the operators' ingest page."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Sum

from ingest.models import DataHubConnector, DataHubPull

RECENT_ERRORS = 10


@dataclass(frozen=True)
class PullSummary:
    connectors_enabled: int
    ok: int  # pulls started in the window, by outcome
    errors: int
    in_flight: int
    readings_stored: int
    recent_errors: list[DataHubPull]


def pull_summary(*, since: dt.datetime) -> PullSummary:
    """Pulls started since `since` by status, and the latest errors (with the meter and HTTP status)."""
    by_status = dict(
        DataHubPull.objects.filter(started_at__gte=since).values_list("status").annotate(n=Count("pk")).order_by()
    )
    stored = DataHubPull.objects.filter(started_at__gte=since, status=DataHubPull.Status.OK).aggregate(
        n=Sum("readings_stored")
    )["n"]
    errors = (
        DataHubPull.objects.filter(started_at__gte=since, status=DataHubPull.Status.ERROR)
        .select_related("connector__meter")
        .order_by("-started_at")[:RECENT_ERRORS]
    )
    return PullSummary(
        connectors_enabled=DataHubConnector.objects.filter(enabled=True).count(),
        ok=by_status.get(DataHubPull.Status.OK, 0),
        errors=by_status.get(DataHubPull.Status.ERROR, 0),
        in_flight=sum(by_status.get(status, 0) for status in DataHubPull.IN_FLIGHT),
        readings_stored=stored or 0,
        recent_errors=list(errors),
    )
