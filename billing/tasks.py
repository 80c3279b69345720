"""Celery tasks of billing: following the stored-batches stream into rollups, the nightly VEE, the daily
bill-cycle run (the monthly run on the 1st), the on-demand read sweep, the reads fetched before
billing, and the SFTP delivery of the outbox.

Tasks stay thin: small arguments, the work in billing.rollups and billing.vee.services. Both
are idempotent, so an overlapping or repeated run changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import Task, shared_task
from celery.exceptions import MaxRetriesExceededError

from billing import delivery
from billing.bills import bill_cycle_catch_up, bill_run_create, bill_run_execute
from billing.models import BillingRun, OutboxDeliveryAttempt
from billing.on_demand_reads import on_demand_reads_sweep
from billing.outbox import outbox_write
from billing.read_fetch import deliveries_sweep
from billing.rebill_proposals import rebill_proposals_judge
from billing.rollups import rollups_follow
from billing.vee.services import vee_run
from mdms.core.localtime import local_today
from mdms.core.models import Meter

# Meters per VEE task: a chunk takes about a minute, so a retry redoes little.
VEE_CHUNK = 500


@shared_task(name="billing.follow_stored_batches", ignore_result=True)
def follow_stored_batches() -> int:
    """Recompute the rollups of the meter-days the ingest stored since the last call, then judge the estimates
    that actuals replaced (billing.rebill_proposals); returns batches taken.

    A run stops taking new entries after rollups.FOLLOW_BUDGET_S (10 s) and leaves the rest to the next.
    """
    batches = rollups_follow().batches
    # Actuals the follower found replacing estimates: judged against the issued bills (a re-bill proposed
    # in the exception queue above the thresholds). Cheap when there is nothing to judge.
    rebill_proposals_judge()
    return batches


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


@shared_task(name="billing.bill_cycle_run", ignore_result=True)
def bill_cycle_run(run_date: str | None = None) -> int | None:
    """Bill the accounts whose bill-cycle day is run_date (ISO; default today, local); returns the run id.

    On the 1st this is the monthly run; days 29 to 31 have no accounts (cycle days are 1 to 28).
    """
    day = dt.date.fromisoformat(run_date) if run_date else local_today()
    if day.day > 28:
        return None
    run = bill_run_execute(run=bill_run_create(run_date=day))
    return run.pk


@shared_task(name="billing.bill_run_execute", ignore_result=True)
def bill_run_execute_task(run_pk: int) -> int:
    """Execute a run billing staff started (billing.bills.bill_run_start); a second delivery does nothing."""
    run = BillingRun.objects.filter(pk=run_pk).first()
    if run is None:
        return 0
    return bill_run_execute(run=run).bills_created


@shared_task(name="billing.bill_cycle_catch_up", ignore_result=True)
def bill_cycle_catch_up_task() -> list[int]:
    """Run the bill-cycle days of the last week that were missed (or held while the rollups were behind)."""
    return [run.pk for run in bill_cycle_catch_up()]


@shared_task(name="billing.on_demand_reads_sweep", ignore_result=True)
def on_demand_reads_sweep_task() -> dict[str, int]:
    """Complete pending on-demand reads whose reply arrived; estimate those past their timeout."""
    return on_demand_reads_sweep()


@shared_task(name="billing.deliveries_sweep", ignore_result=True)
def deliveries_sweep_task() -> dict[str, Any]:
    """Fetch missing reads before billing dates and release determinants batch by batch, with files."""
    report = deliveries_sweep()
    for run_date in {key.split(" ")[0] for key in report}:
        outbox_write(run_date=dt.date.fromisoformat(run_date))
    return report


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
