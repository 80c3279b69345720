"""The outbound webhook to the utility's outage management system: JSON POSTs of incidents.

Deliveries are rows first (what was sent, when, how it went), then a Celery task per delivery
does the POST and retries with backoff: the outage job and the ingest never wait on the OMS.

An attempt claims its delivery (pending -> sending, a compare-and-swap) before it posts, so a task
that Celery delivers twice, or two workers at once, post an incident once. The task module queues
the POSTs: monitoring.apps registers monitoring.tasks' enqueuer here at start-up, so neither this
module nor the outage services that call it import the tasks (the tasks import them).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from monitoring.models import OutageIncident, WebhookDelivery

TIMEOUT_S = 10.0
# A claim older than this belongs to a worker that died mid-post: the delivery may be claimed again.
# Far beyond TIMEOUT_S, so a slow but live attempt is never doubled.
CLAIM_LEASE = dt.timedelta(minutes=5)


class Outcome(StrEnum):
    DELIVERED = "delivered"  # the OMS answered 2xx (now or before)
    FAILED = "failed"  # this attempt failed: the task retries
    CLAIMED_ELSEWHERE = "claimed_elsewhere"  # another attempt holds the claim: this one does nothing


_enqueue: Callable[[int], Any] | None = None


def delivery_enqueuer_set(enqueue: Callable[[int], Any]) -> None:
    """Called by monitoring.apps at start-up with the task module's enqueuer."""
    global _enqueue
    _enqueue = enqueue


def incident_payload(incident: OutageIncident, event: str) -> dict[str, Any]:
    now = timezone.now()
    out = incident.meters.select_related("meter").order_by("meter__serial")
    return {
        "event": event,
        "sent_at": now.isoformat(),
        "incident": {
            "id": incident.pk,
            "status": incident.status,
            "feeder": incident.feeder.code if incident.feeder else None,
            "region": incident.region.code if incident.region else None,
            "started_at": incident.started_at.isoformat(),
            "ended_at": incident.ended_at.isoformat() if incident.ended_at else None,
            "duration_class": incident.duration_class or incident.classify(now),
            "affected_meters": incident.affected_meters,
            "affected_customers": incident.affected_customers,
            "meters": [
                {
                    "serial": row.meter.serial,
                    "out_since": row.out_since.isoformat(),
                    "restored_at": row.restored_at.isoformat() if row.restored_at else None,
                    "source": row.source,
                }
                for row in out
            ],
        },
    }


def incidents_notify(touched: dict[int, str]) -> list[int]:
    """One delivery per incident touched by a run, queued after commit; none when no URL is set."""
    url = settings.MONITORING_WEBHOOK_URL
    if not url or not touched:
        return []
    if _enqueue is None:
        raise ImproperlyConfigured("no webhook enqueuer registered (monitoring.apps does it at start-up)")
    created = []
    for incident in OutageIncident.objects.filter(pk__in=list(touched)).select_related("feeder", "region"):
        event = touched[incident.pk]
        delivery = WebhookDelivery.objects.create(
            incident=incident, event=event, url=url, payload=incident_payload(incident, event)
        )
        created.append(delivery.pk)
        transaction.on_commit(functools.partial(_enqueue, delivery.pk))
    return created


def _claim(delivery_id: int, now: dt.datetime) -> WebhookDelivery | None:
    """Pending (or sending under a lapsed claim) -> sending, in one compare-and-swap; None if lost."""
    lapsed = Q(status=WebhookDelivery.Status.SENDING, claimed_at__lt=now - CLAIM_LEASE)
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id)
        .filter(Q(status=WebhookDelivery.Status.PENDING) | lapsed)
        .update(status=WebhookDelivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    )
    return WebhookDelivery.objects.get(pk=delivery_id) if claimed == 1 else None


def _post(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """POST the payload once: the status code (None when no answer came) and the error, if any."""
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked by the caller)
        delivery.url,
        data=json.dumps(delivery.payload).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-MDMS-Event": delivery.event,
            "X-MDMS-Delivery": str(delivery.pk),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (URL is configuration)
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, str(exc.reason)[:500]
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)[:500]


def webhook_attempt(*, delivery_id: int) -> Outcome:
    """Claim the delivery, POST it once and record how it went."""
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        return Outcome.DELIVERED
    if not delivery.url.startswith(("http://", "https://")):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(last_error="only http and https URLs are posted to")
        return Outcome.FAILED
    now = dt.datetime.now(tz=dt.UTC)
    claimed = _claim(delivery_id, now)
    if claimed is None:
        return Outcome.CLAIMED_ELSEWHERE
    status_code, error = _post(claimed)
    ok = status_code is not None and 200 <= status_code < 300
    fields: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
    if ok:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=dt.datetime.now(tz=dt.UTC))
    else:
        fields.update(status=WebhookDelivery.Status.PENDING)
    # Released only under our own claim: had it lapsed and been taken over, the newer attempt reports.
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.SENDING, claimed_at=now).update(
        **fields
    )
    return Outcome.DELIVERED if ok else Outcome.FAILED


def webhook_give_up(*, delivery_id: int) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED
    )
