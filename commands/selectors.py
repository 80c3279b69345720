"""Reads of the command framework: a meter's commands with their history, counts by status."""

from __future__ import annotations

from django.db.models import Count

from commands.models import MeterCommand


def commands_for_meter(*, meter_pk: int, limit: int = 20) -> list[MeterCommand]:
    """The meter's newest commands, each with its events (one query for the events of all)."""
    return list(
        MeterCommand.objects.filter(meter_id=meter_pk)
        .select_related("requested_by", "requested_by_token")
        .prefetch_related("events")
        .order_by("-created_at", "-id")[:limit]
    )


def command_counts_by_status() -> dict[str, int]:
    """How many commands are in each status now (operators' and Prometheus's view of the queue)."""
    rows = MeterCommand.objects.values_list("status").annotate(n=Count("id"))
    return {str(status): int(n) for status, n in rows}
