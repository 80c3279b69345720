"""The ingest app's master data: data hub connectors and the record of every pull (ingest.datahub).

Readings themselves live in MongoDB (mdms.core.timeseries); these rows say where a meter's load
curve can be fetched and how each fetch went.
"""

from __future__ import annotations

import datetime as dt

from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q

from mdms.core.models import Meter

# The Enedis "Metering Data" v5 load-curve route; a hub that mirrors it elsewhere sets its own path.
DEFAULT_LOAD_CURVE_PATH = "/metering_data_lc/v5/consumption_load_curve"


class DataHubConnector(models.Model):
    """Where one meter's load curve is pulled from: a utility data hub speaking the Enedis JSON.

    The token is a secret (a bearer token that reads the customer's consumption): it is stored
    because every morning's pull needs it, never shown in full by the admin, and never logged.
    """

    meter = models.OneToOneField(Meter, on_delete=models.CASCADE, related_name="datahub_connector")
    base_url = models.URLField(
        max_length=300,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The hub's address, e.g. https://hub.example.org (http or https only).",
    )
    path = models.CharField(
        max_length=200,
        default=DEFAULT_LOAD_CURVE_PATH,
        help_text="The load-curve route under the base URL (the Enedis v5 route by default).",
    )
    token = models.CharField(
        max_length=2000, help_text="Bearer token sent as 'Authorization: Bearer …'. A secret: shown masked."
    )
    usage_point_id = models.CharField(
        max_length=64, help_text="The meter's id at the hub (an Enedis PDL: 14 digits); answers must carry it."
    )
    enabled = models.BooleanField(default=True, help_text="Only enabled connectors are pulled every morning.")
    last_success_day = models.DateField(
        null=True, blank=True, editable=False, help_text="The newest local day pulled with success."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["meter__serial"]
        verbose_name = "data hub connector"

    def __str__(self) -> str:
        return f"{self.meter.serial} at {self.base_url} ({self.usage_point_id})"

    @property
    def masked_token(self) -> str:
        """Enough of the token to tell two apart, never enough to use it."""
        return f"…{self.token[-4:]}" if len(self.token) > 12 else "••••"


class DataHubPull(models.Model):
    """One pull of a day range for a connector: what was asked, how the hub answered, what was stored."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying (waiting before the next attempt)"
        OK = "ok", "OK"
        ERROR = "error", "Error"

    class Trigger(models.TextChoices):
        DAILY = "daily", "Daily job"
        BACKFILL = "backfill", "Backfill command"

    IN_FLIGHT = (Status.RUNNING, Status.RETRYING)

    connector = models.ForeignKey(DataHubConnector, on_delete=models.CASCADE, related_name="pulls")
    start_day = models.DateField(help_text="First local day asked for.")
    end_day = models.DateField(help_text="Day after the last one asked for (exclusive, as the hub's end parameter).")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="HTTP requests made for this pull.")
    http_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Status of the last answer; empty when the hub could not be reached."
    )
    readings_received = models.PositiveIntegerField(default=0)
    readings_stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0, help_text="Readings already stored (a re-pull).")
    error = models.TextField(blank=True, help_text="Why the pull failed, with the line for a malformed answer.")

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["connector", "status", "start_day"], name="datahub_pull_connector_idx"),
            models.Index(fields=["status", "started_at"], name="datahub_pull_status_idx"),
        ]
        constraints = [
            # At most one pull of a connector in flight: two daily jobs at once, or a job and a
            # backfill, cannot fetch and store the same days side by side.
            models.UniqueConstraint(
                fields=["connector"],
                condition=Q(status__in=["running", "retrying"]),
                name="one_datahub_pull_in_flight",
            ),
            models.CheckConstraint(condition=Q(end_day__gt=models.F("start_day")), name="datahub_pull_range"),
        ]

    def __str__(self) -> str:
        return f"{self.connector.meter.serial} {self.start_day}..{self.last_day}: {self.status}"

    @property
    def last_day(self) -> dt.date:
        """The last day asked for (end_day is exclusive)."""
        return self.end_day - dt.timedelta(days=1)
