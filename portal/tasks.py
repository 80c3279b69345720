"""Celery tasks of the portal: thin, they call the pages' selectors."""

from __future__ import annotations

from celery import shared_task

from mdms.core.localtime import local_today
from portal.views import operator_data


@shared_task(name="portal.grid_refresh", ignore_result=True)
def grid_refresh() -> bool:
    """Sum the operator dashboard's grid figures into the cache before it expires (a large fleet only).

    Returns whether it computed them: below GRID_CACHE_MIN_METERS every page sums them itself.
    """
    return operator_data.grid_view_refresh(today=local_today())
