"""The state of each local day in the lake, per kind of data: what the operator sees, what tiering trusts.

A day moves exported -> verified -> tiered (raw gone from MongoDB, the lake is its only copy),
and tiered -> restored when a backfill reads it back (restored days are tiered again later).
`error` holds the last failure (a verification that did not match, an unreadable partition);
it is cleared by the next success. The unique (day, kind) pair makes a second export of a day
update its row, never add one.
"""

from __future__ import annotations

from django.db import models


class LakeDay(models.Model):
    class Kind(models.TextChoices):
        READINGS = "readings", "Readings"
        EVENTS = "events", "Events"

    class Status(models.TextChoices):
        EXPORTED = "exported", "Exported"  # the partition is written; MongoDB still has the day
        VERIFIED = "verified", "Verified"  # re-read from the lake, it matched MongoDB
        TIERED = "tiered", "Tiered"  # raw rows removed from MongoDB; the lake is the only copy
        RESTORED = "restored", "Restored"  # read back from the lake into MongoDB

    day = models.DateField(help_text="The local day (settings.TIME_ZONE).")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices)
    path = models.CharField(max_length=500, help_text="The partition's Parquet file, under LAKE_URL.")
    rows = models.PositiveBigIntegerField(default=0)
    meters = models.PositiveIntegerField(default=0)
    energy_import_kwh = models.FloatField(default=0.0, help_text="Sum over the day's rows (readings only).")
    energy_export_kwh = models.FloatField(default=0.0, help_text="Sum over the day's rows (readings only).")
    min_ts = models.DateTimeField(null=True, blank=True)
    max_ts = models.DateTimeField(null=True, blank=True)
    exported_at = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)
    tiered_at = models.DateTimeField(null=True, blank=True)
    tiered_rows = models.PositiveBigIntegerField(default=0, help_text="Stored copies removed from MongoDB.")
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_rows = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "kind"]
        constraints = [models.UniqueConstraint(fields=["day", "kind"], name="lake_day_kind_unique")]
        indexes = [models.Index(fields=["status", "day"], name="lake_status_day_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.day}: {self.status}"
