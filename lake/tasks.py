"""Celery tasks of the lake: thin, they call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from lake.services import lake_nightly


@shared_task(name="lake.nightly", ignore_result=True)
def nightly() -> dict[str, Any]:
    """Export the finished days not yet in the lake, then tier the verified old ones."""
    result = lake_nightly()
    return {
        "skipped": result.skipped,
        "exported": [f"{r.kind} {r.day}" for r in result.exported],
        "tiered": [f"{kind} {day}" for kind, day in (result.tier.tiered if result.tier else [])],
        "refused": [f"{kind} {day}: {why}" for kind, day, why in (result.tier.refused if result.tier else [])],
    }
