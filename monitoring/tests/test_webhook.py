"""Webhook deliveries are claimed before they are posted: a redelivered task, or two workers at
once, post an incident to the outage management system once."""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mdms.core.testing import make_grid, run_at_once
from monitoring import tasks, webhook
from monitoring.models import OutageIncident, WebhookDelivery
from monitoring.tests import helpers

T0 = dt.datetime(2026, 11, 2, 18, 0, 3, tzinfo=dt.UTC)


class _CountingOMS(helpers.QuietHandler):
    """Counts the POSTs it gets; answers each after `delay_s`, so two attempts can overlap."""

    posts = 0
    delay_s = 0.0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with _CountingOMS.lock:
            _CountingOMS.posts += 1
        time.sleep(_CountingOMS.delay_s)
        self.send_response(200)
        self.end_headers()


@pytest.fixture
def oms() -> Iterator[str]:
    _CountingOMS.posts, _CountingOMS.delay_s = 0, 0.0
    with helpers.http_server(_CountingOMS) as base:
        yield f"{base}/incidents"


def _delivery(url: str, **fields: Any) -> WebhookDelivery:
    incident = OutageIncident.objects.create(feeder=make_grid("north"), started_at=T0, affected_meters=1)
    return WebhookDelivery.objects.create(
        incident=incident, event="incident.opened", url=url, payload={"incident": incident.pk}, **fields
    )


@pytest.mark.django_db
def test_a_redelivered_task_posts_the_incident_once(oms: str) -> None:
    delivery = _delivery(oms)

    tasks.deliver_webhook.apply(args=[delivery.pk])
    tasks.deliver_webhook.apply(args=[delivery.pk])  # Celery delivers the same message again

    delivery.refresh_from_db()
    assert _CountingOMS.posts == 1
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (WebhookDelivery.Status.DELIVERED, 1, 200)


@pytest.mark.django_db(transaction=True)
def test_two_workers_attempting_at_once_post_the_incident_once(oms: str) -> None:
    delivery = _delivery(oms)
    _CountingOMS.delay_s = 1.0  # the first POST is still in flight when the second worker starts
    attempt = functools.partial(webhook.webhook_attempt, delivery_id=delivery.pk)

    outcomes = run_at_once(attempt, attempt)

    assert _CountingOMS.posts == 1
    assert sorted(outcomes) == sorted([webhook.Outcome.DELIVERED, webhook.Outcome.CLAIMED_ELSEWHERE])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 1)


@pytest.mark.django_db
def test_a_live_claim_is_left_alone_and_a_lapsed_one_is_taken_over(oms: str) -> None:
    now = dt.datetime.now(tz=dt.UTC)
    live = _delivery(oms, status=WebhookDelivery.Status.SENDING, claimed_at=now, attempts=1)
    lapsed = _delivery(
        oms, status=WebhookDelivery.Status.SENDING, claimed_at=now - webhook.CLAIM_LEASE - dt.timedelta(seconds=1)
    )

    assert webhook.webhook_attempt(delivery_id=live.pk) == webhook.Outcome.CLAIMED_ELSEWHERE
    assert _CountingOMS.posts == 0
    assert webhook.webhook_attempt(delivery_id=lapsed.pk) == webhook.Outcome.DELIVERED
    assert _CountingOMS.posts == 1


@pytest.mark.django_db
def test_a_failed_attempt_leaves_the_delivery_pending_for_the_retry(db: None) -> None:
    # Nothing listens on port 9 of localhost: the POST fails without an answer.
    delivery = _delivery("http://127.0.0.1:9/incidents")

    assert webhook.webhook_attempt(delivery_id=delivery.pk) == webhook.Outcome.FAILED

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (WebhookDelivery.Status.PENDING, 1, None)
    assert delivery.last_error
