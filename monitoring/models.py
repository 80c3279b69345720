"""Outage incidents, who is out in each, and the webhook deliveries that told the OMS about them.

Anomalies themselves live in MongoDB (mdms.core.timeseries.anomalies): they follow the readings.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q

from mdms.core.models import Feeder, Meter, Region

# An outage shorter than this is momentary (IEEE 1366 uses 5 minutes for MAIFI vs SAIFI).
MOMENTARY_LIMIT = dt.timedelta(minutes=5)


class OutageIncident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"  # at least one meter is still out
        CLOSED = "closed", "Closed"  # every meter is back

    class Duration(models.TextChoices):
        MOMENTARY = "momentary", "Momentary (< 5 min)"
        SUSTAINED = "sustained", "Sustained"

    feeder = models.ForeignKey(Feeder, on_delete=models.PROTECT, null=True, blank=True, related_name="incidents")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, null=True, blank=True, related_name="incidents")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    started_at = models.DateTimeField(help_text="When the first meter went out (last gasp or last reading).")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the last meter came back.")
    duration_class = models.CharField(max_length=10, choices=Duration.choices, blank=True)
    affected_meters = models.PositiveIntegerField(default=0)
    affected_customers = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # A meter going out looks for an open incident on its feeder started near its own time:
            # an index range on started_at, however many incidents (open or closed) history holds.
            models.Index(fields=["status", "feeder", "started_at"], name="incident_status_feeder_start"),
        ]

    def __str__(self) -> str:
        return f"incident {self.pk} on {self.feeder or 'unknown feeder'} since {self.started_at:%Y-%m-%d %H:%M}"

    def classify(self, now: dt.datetime) -> str:
        """Momentary or sustained, as of now while open, final once closed."""
        end = self.ended_at or now
        return self.Duration.MOMENTARY if end - self.started_at < MOMENTARY_LIMIT else self.Duration.SUSTAINED


class IncidentMeter(models.Model):
    class Source(models.TextChoices):
        LAST_GASP = "last_gasp", "Last gasp (power_off event)"
        SILENT = "silent", "Silent for too many intervals"

    incident = models.ForeignKey(OutageIncident, on_delete=models.CASCADE, related_name="meters")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="outages")
    source = models.CharField(max_length=10, choices=Source.choices)
    out_since = models.DateTimeField()
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_by = models.CharField(max_length=12, blank=True, help_text="power_on or reading")

    class Meta:
        ordering = ["incident", "meter"]
        constraints = [
            # A meter is out in at most one incident at a time: the guard that makes a re-run of
            # the outage job, or two at once, harmless.
            models.UniqueConstraint(
                fields=["meter"], condition=Q(restored_at__isnull=True), name="one_open_outage_per_meter"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter} out since {self.out_since:%Y-%m-%d %H:%M}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        # Claimed by one worker, which is posting it now (claimed_at says since when).
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (retries exhausted)"

    incident = models.ForeignKey(OutageIncident, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=16, help_text="incident.opened, incident.updated or incident.closed")
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the current attempt was claimed")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} for incident {self.incident_id}: {self.status}"
