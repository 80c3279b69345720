"""Commands to meters: one model for reads, disconnects, reconnects, clock syncs and demand resets.

Every request is asynchronous (the pattern of the open smart-metering platforms): it is recorded
with a correlation id, a priority, a not-before time and a deadline, and moves
queued -> sent -> acknowledged -> completed, or ends failed (with the meter's reason) or expired
(no answer by its deadline). Each change is kept with its time in MeterCommandEvent.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from commands.kinds import Kind
from mdms.core.models import ApiToken, Meter

# The kinds as model choices (also named in the API schema: SPECTACULAR_SETTINGS' ENUM_NAME_OVERRIDES).
KIND_CHOICES = [(kind.value, kind.value.replace("_", " ")) for kind in Kind]


class MeterCommand(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    # Waiting for the meter: at most one per meter at a time (commands to one meter go in order).
    IN_FLIGHT = frozenset({Status.SENT, Status.ACKNOWLEDGED})
    FINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.EXPIRED, Status.CANCELLED})

    # The correlation id: sent to the meter as "id", and matched against its replies.
    command_id = models.CharField(max_length=40, unique=True)
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="commands")
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.QUEUED)
    # 1 (lowest) to 9 (most urgent); a meter's queued commands go out most urgent first, then oldest.
    priority = models.PositiveSmallIntegerField(default=5)
    not_before = models.DateTimeField()
    deadline = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a sent command with no answer is sent again (backoff), while its deadline allows.
    retry_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it was asked (required to cut supply).")
    result = models.JSONField(default=dict, blank=True)  # registers, relay state, clock offset, ...
    failure = models.CharField(max_length=300, blank=True)  # the meter's reason, or why it expired
    # Who asked: a person, or a machine client (the CIS's token), and its idempotency key.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by_token = models.ForeignKey(
        ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="commands"
    )
    client_key = models.CharField(max_length=40, blank=True)  # "token:12" or "user:5": whose key space
    idempotency_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The guard behind idempotency: the same client's same key is one command, whatever races.
            models.UniqueConstraint(
                fields=["client_key", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="command_idempotency_key_unique",
            ),
            models.CheckConstraint(condition=Q(priority__gte=1, priority__lte=9), name="command_priority_1_to_9"),
        ]
        indexes = [
            # The dispatcher's two questions, several times a second: what is due, what is in flight.
            models.Index(fields=["status", "not_before"], name="command_status_due_idx"),
            models.Index(fields=["meter", "status"], name="command_meter_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.command_id[:8]} to {self.meter_id} ({self.status})"

    @property
    def requester_label(self) -> str:
        """Who asked, for lists: the person's username, the machine client's token name, or the system."""
        if self.requested_by is not None:
            return self.requested_by.get_username()
        if self.requested_by_token is not None:
            return f"token {self.requested_by_token.name}"
        return "system"


class MeterCommandEvent(models.Model):
    """One change of a command's status, with its time: the command's history."""

    command = models.ForeignKey(MeterCommand, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=14, choices=MeterCommand.Status.choices)
    at = models.DateTimeField()
    attempt = models.PositiveSmallIntegerField(default=0)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.command_id} {self.status} at {self.at:%Y-%m-%d %H:%M:%S}"
