"""The outbound webhook to the utility's outage management system: JSON POSTs of incidents.

Deliveries are rows first (what was sent, when, how it went), then a Celery task per delivery
does the POST and retries with backoff: the outage job and the ingest never wait on the OMS.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.models import OutageIncident, WebhookDelivery

TIMEOUT_S = 10.0


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
    from monitoring import tasks  # tasks import services; imported late to avoid the cycle

    created = []
    for incident in OutageIncident.objects.filter(pk__in=list(touched)).select_related("feeder", "region"):
        event = touched[incident.pk]
        delivery = WebhookDelivery.objects.create(
            incident=incident, event=event, url=url, payload=incident_payload(incident, event)
        )
        created.append(delivery.pk)
        transaction.on_commit(functools.partial(tasks.deliver_webhook.delay, delivery.pk))
    return created


def webhook_attempt(*, delivery_id: int) -> bool:
    """POST the delivery once and record how it went; True when the OMS answered 2xx."""
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        return True
    if not delivery.url.startswith(("http://", "https://")):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(last_error="only http and https URLs are posted to")
        return False
    body = json.dumps(delivery.payload).encode()
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        delivery.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-MDMS-Event": delivery.event,
            "X-MDMS-Delivery": str(delivery.pk),
        },
    )
    status_code: int | None = None
    error = ""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (URL is configuration)
            status_code = response.status
    except urllib.error.HTTPError as exc:
        status_code, error = exc.code, str(exc.reason)[:500]
    except (urllib.error.URLError, OSError) as exc:
        error = str(exc)[:500]
    ok = status_code is not None and 200 <= status_code < 300
    fields: dict[str, Any] = {"attempts": delivery.attempts + 1, "last_status_code": status_code, "last_error": error}
    if ok:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=dt.datetime.now(tz=dt.UTC))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return ok


def webhook_give_up(*, delivery_id: int) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED
    )
