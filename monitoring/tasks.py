"""Celery tasks of monitoring: thin, they take small values and call services."""

from __future__ import annotations

import socket
from typing import Any

from celery import Task, shared_task

from monitoring import outages, services, webhook

# Backoff between webhook attempts: 10 s, 20 s, 40 s, ... capped at 10 minutes, for about a day.
WEBHOOK_MAX_RETRIES = 150
WEBHOOK_BACKOFF_S = 10
WEBHOOK_BACKOFF_MAX_S = 600
# The followers run every 5 seconds, each on its own queue and worker (settings.CELERY_TASK_ROUTES):
# during a backfill the stream holds minutes of work, so a run does a bounded share, acknowledges it
# and leaves the rest to the next run (both are idempotent: redoing an entry changes nothing).
DETECT_BUDGET_S = 10.0
OUTAGES_TAKE = 200
OUTAGES_BUDGET_S = 10.0


def _consumer() -> str:
    return socket.gethostname()


@shared_task(name="monitoring.detect_anomalies", ignore_result=True)
def detect_anomalies() -> dict[str, Any]:
    return services.anomalies_detect_pending(consumer=_consumer(), budget_s=DETECT_BUDGET_S)


@shared_task(name="monitoring.refresh_baselines", ignore_result=True)
def refresh_baselines() -> int:
    return services.baselines_rebuild_all()


@shared_task(name="monitoring.track_outages", ignore_result=True)
def track_outages() -> dict[str, int]:
    return outages.outages_process_pending(consumer=_consumer(), count=OUTAGES_TAKE, budget_s=OUTAGES_BUDGET_S)


@shared_task(name="monitoring.check_silent_meters", ignore_result=True)
def check_silent_meters() -> int:
    return len(outages.outages_check_silent())


@shared_task(bind=True, name="monitoring.deliver_webhook", ignore_result=True, max_retries=WEBHOOK_MAX_RETRIES)
def deliver_webhook(self: Task, delivery_id: int) -> bool:
    outcome = webhook.webhook_attempt(delivery_id=delivery_id)
    if outcome == webhook.Outcome.DELIVERED:
        return True
    if outcome == webhook.Outcome.CLAIMED_ELSEWHERE:
        return False  # the attempt holding the claim records the result and retries if it must
    if self.request.retries >= WEBHOOK_MAX_RETRIES:
        webhook.webhook_give_up(delivery_id=delivery_id)
        return False
    countdown = min(WEBHOOK_BACKOFF_MAX_S, WEBHOOK_BACKOFF_S * 2**self.request.retries)
    raise self.retry(countdown=countdown)


def deliver_webhook_enqueue(delivery_id: int) -> None:
    """Queue a delivery's POST: what monitoring.webhook calls after its row is committed."""
    deliver_webhook.delay(delivery_id)
