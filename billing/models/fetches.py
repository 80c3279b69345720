"""Determinants delivered to the CIS in batches, and the reads fetched for them before billing.

On a billing date every account due gets one row: complete accounts go out in batch 1; an account
whose meter lacks its closing register read (or too many intervals) gets a read command at the lead
time, and goes out in a later batch once the read arrived, or in the final batch, estimated and
flagged, once the command's retries ran out.
"""

from __future__ import annotations

from django.db import models

from mdms.core.models import Account, Meter

__all__ = ["DeterminantDelivery"]


class DeterminantDelivery(models.Model):
    class State(models.TextChoices):
        COMPLETE = "complete", "Complete at the lead time"
        FETCHING = "fetching", "Read requested, waiting"
        FETCHED = "fetched", "Read fetched"
        ESTIMATED = "estimated", "No read: estimated"

    run_date = models.DateField()
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="determinant_deliveries")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices)
    # Null until the account's determinants are released; 1 = complete at the lead time.
    batch = models.PositiveSmallIntegerField(null=True, blank=True)
    final_batch = models.BooleanField(default=False)  # the last batch: estimated accounts, flagged
    reason = models.CharField(max_length=200, blank=True)  # why a read was fetched
    command = models.ForeignKey(
        "commands.MeterCommand", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closing_read_at = models.DateTimeField(null=True, blank=True)
    closing_register_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_date", "batch", "account__number"]
        constraints = [
            # One row per account and date: the prefetch, the sweep and the outbox may all run twice.
            models.UniqueConstraint(fields=["run_date", "account"], name="delivery_date_account_unique")
        ]
        indexes = [models.Index(fields=["run_date", "batch"], name="delivery_date_batch_idx")]

    def __str__(self) -> str:
        return f"{self.account_id} on {self.run_date} batch {self.batch or '-'} ({self.state})"
