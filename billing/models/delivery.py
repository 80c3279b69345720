"""Deliveries of the outbox's BILLDET files to the CIS over SFTP, and every attempt at each.

One OutboxDelivery per version of a file: a file whose bytes (SHA-256) equal its newest version's
is not delivered again; a changed file is a new version. Billing staff read this log in the portal.
"""

from __future__ import annotations

from django.db import models

__all__ = ["OutboxDelivery", "OutboxDeliveryAttempt"]


class OutboxDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed, will retry"
        # The file changed again, or left the outbox, before this version was sent: its newer
        # version (if any) is what goes out.
        SUPERSEDED = "superseded", "Superseded"

    file_name = models.CharField(max_length=100)
    # 1, 2, ... per file name: (file_name, version) is unique, so two scans at once record a
    # changed file once.
    version = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    # The file's modification time when its bytes were last hashed: the minute sweep hashes a file
    # again only when its size or this changed, instead of reading the whole outbox every minute.
    file_mtime_ns = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the periodic sweep may try again after a failure (the backoff), null while pending.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set by the claim (pending/failed -> sending); a claim older than the connection timeout
    # many times over belongs to a worker that died, and the sweep takes the file back.
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    destination = models.CharField(
        max_length=300, blank=True, help_text="Where it went: user@host:port, and the remote directory."
    )
    found_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-found_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["file_name", "version"], name="outbox_delivery_file_version_unique")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.file_name} v{self.version} ({self.status})"


class OutboxDeliveryAttempt(models.Model):
    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"  # the server was unreachable or an SFTP operation failed
        REFUSED = "refused", "Refused"  # the server's host key is not the configured one: nothing sent
        SUPERSEDED = "superseded", "Superseded"  # the file's bytes were no longer this version's

    delivery = models.ForeignKey(OutboxDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.delivery.file_name} at {self.started_at:%Y-%m-%d %H:%M:%S}: {self.outcome}"
