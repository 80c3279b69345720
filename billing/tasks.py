"""Celery tasks for usage: following the stored-batches stream into rollups, the nightly VEE, and the
SFTP delivery of the outbox.

Tasks stay thin: small arguments, the work in billing.rollups and billing.services_usage. Both
are idempotent, so an overlapping or repeated run changes nothing.
"""

from __future__ import annotations

import datetime as dt

from celery import Task, shared_task
from celery.exceptions import MaxRetriesExceededError

from billing import delivery
from billing.models import OutboxDeliveryAttempt
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


# Tries of one delivery within its task before the periodic sweep takes over (with the same backoff).
OUTBOX_TASK_RETRIES = 5


@shared_task(name="billing.outbox_sweep", ignore_result=True)
def outbox_sweep() -> int:
    """Record new and changed outbox files, and queue a delivery task for each version due; returns how many."""
    result = delivery.outbox_sweep()
    for delivery_pk in result.due:
        outbox_deliver.delay(delivery_pk)
    return len(result.due)


@shared_task(bind=True, name="billing.outbox_deliver", ignore_result=True, max_retries=OUTBOX_TASK_RETRIES)
def outbox_deliver(self: Task, delivery_pk: int) -> str | None:
    """Send one version of an outbox file over SFTP; a failure is retried here after its backoff."""
    result = delivery.delivery_attempt(delivery_pk=delivery_pk)
    # A refused host key is not retried here: it does not mend itself in seconds, and the sweep
    # tries again after the backoff (once someone has fixed the key or the server).
    if result.outcome == OutboxDeliveryAttempt.Outcome.FAILED and result.retry_in_s is not None:
        try:
            raise self.retry(countdown=result.retry_in_s)
        except MaxRetriesExceededError:
            pass  # the periodic sweep takes it from here, at next_attempt_at
    return result.outcome


# The bill tasks live in their own module; importing it here lets autodiscovery register them.
from billing import tasks_bills  # noqa: E402, F401
