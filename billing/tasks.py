"""Celery tasks for usage: following the stored-batches stream into rollups, and the nightly VEE.

Tasks stay thin: small arguments, the work in billing.rollups and billing.services_usage. Both
are idempotent, so an overlapping or repeated run changes nothing.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from billing.rollups import rollups_follow
from billing.services_usage import vee_run
from mdms.core.localtime import local_today
from mdms.core.models import Meter

# Meters per VEE task: a chunk takes about a minute, so a retry redoes little.
VEE_CHUNK = 500


@shared_task(name="billing.follow_stored_batches", ignore_result=True)
def follow_stored_batches() -> int:
    """Recompute the rollups of the meter-days the ingest stored since the last call; returns batches taken.

    A run stops taking new entries after rollups.FOLLOW_BUDGET_S (10 s) and leaves the rest to the next.
    """
    return rollups_follow().batches


@shared_task(name="billing.vee_yesterday", ignore_result=True)
def vee_yesterday() -> int:
    """Fan out the nightly VEE over every meter in service, yesterday in local time; returns chunks queued."""
    yesterday = local_today() - dt.timedelta(days=1)
    pks = list(
        Meter.objects.filter(status__in=[Meter.Status.ACTIVE, Meter.Status.DISABLED])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    chunks = [pks[offset : offset + VEE_CHUNK] for offset in range(0, len(pks), VEE_CHUNK)]
    for chunk in chunks:
        vee_days.delay(chunk, yesterday.isoformat(), local_today().isoformat())
    return len(chunks)


@shared_task(
    name="billing.vee_days", ignore_result=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5
)
def vee_days(meter_pks: list[int], first_day: str, end_day: str) -> int:
    """Validate and estimate these meters over local days [first_day, end_day); returns exceptions found."""
    result = vee_run(
        meter_pks=meter_pks, first_day=dt.date.fromisoformat(first_day), end_day=dt.date.fromisoformat(end_day)
    )
    return result.exceptions


# The bill tasks live in their own module; importing it here lets autodiscovery register them.
from billing import tasks_bills  # noqa: E402, F401
