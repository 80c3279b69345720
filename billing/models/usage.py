"""VEE: interval edits with their audit trail, and the exception queue.

The values themselves live in MongoDB (raw readings, estimates, the current edit of an interval);
Postgres keeps what a person must be able to stand behind: who changed which interval, when, from
what to what and why, and the list of problems that wait for a person.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

__all__ = ["EstimateReplacement", "IntervalEdit", "VeeException"]


class IntervalEdit(models.Model):
    """One change by billing staff to one interval: the audit trail, never updated or deleted.

    `ts` is the interval's end in UTC, as in the raw readings. The newest edit of an interval is
    the value every read uses (edit > measured > estimate).
    """

    class Action(models.TextChoices):
        EDIT = "edit", "Edited the value"
        ACCEPT_ESTIMATE = "accept_estimate", "Accepted the estimate"

    meter = models.ForeignKey("core.Meter", on_delete=models.PROTECT, related_name="interval_edits")
    ts = models.DateTimeField(help_text="Interval end (UTC).")
    action = models.CharField(max_length=20, choices=Action.choices)
    old_import_kwh = models.FloatField(null=True, blank=True, help_text="What reads returned before (None: nothing).")
    new_import_kwh = models.FloatField()
    old_export_kwh = models.FloatField(null=True, blank=True)
    new_export_kwh = models.FloatField(null=True, blank=True)
    # What the old value was: measured, estimated or a previous edit.
    old_source = models.CharField(max_length=12, blank=True)
    reason = models.TextField()
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    edited_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-edited_at", "-pk"]
        indexes = [models.Index(fields=["meter", "ts"], name="interval_edit_meter_ts_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="interval_edit_reason_required"),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.ts:%Y-%m-%d %H:%M} {self.old_import_kwh} -> {self.new_import_kwh}"


class VeeException(models.Model):
    """A problem VEE found that needs a person: the exception queue.

    Validation runs again and again over the same data; the unique (meter, kind, period_start)
    makes a second run update the open exception instead of adding another.
    """

    class Kind(models.TextChoices):
        MISSING_INTERVALS = "missing_intervals", "Missing intervals"
        SPIKE = "spike", "Spike against the meter's history"
        NEGATIVE = "negative", "Negative consumption"
        REGISTER_MISMATCH = "register_mismatch", "Register delta disagrees with the intervals"
        CONFLICTING_DUPLICATE = "conflicting_duplicate", "Conflicting duplicates"
        OUTSIDE_INSTALLATION = "outside_installation", "Readings outside the installation dates"
        # Not a VEE finding but work for the same people: actuals replaced estimates of an issued bill
        # (billing.rebill_proposals); period_start/period_end are the bill's billed days.
        REBILL_PROPOSED = "rebill_proposed", "Re-bill proposed: actuals replaced billed estimates"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    meter = models.ForeignKey("core.Meter", on_delete=models.PROTECT, related_name="vee_exceptions")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    period_start = models.DateTimeField(help_text="Start of the interval or range concerned (UTC).")
    period_end = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-period_start", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "kind", "period_start"], name="vee_exception_once_per_period"),
        ]
        indexes = [models.Index(fields=["status", "kind"], name="vee_exception_status_kind_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.meter_id} {self.period_start:%Y-%m-%d %H:%M}"


class EstimateReplacement(models.Model):
    """A measured reading that arrived for an interval VEE had estimated (late data, a re-send, a data
    hub pull, an on-demand read): what the estimate said, what the meter said, and what it meant for
    billing. Written by the rollup follower once the rollups show the actual; the unique (meter, ts)
    makes the same replacement, seen twice, one row, and so at most one proposal.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", "Not yet judged"
        NOT_BILLED = "not_billed", "Not billed yet: the next bill uses the actual"
        BELOW_THRESHOLD = "below_threshold", "Billed; the re-bill would differ by less than the threshold"
        PROPOSED = "proposed", "Billed; a re-bill is proposed"

    meter = models.ForeignKey("core.Meter", on_delete=models.PROTECT, related_name="estimate_replacements")
    ts = models.DateTimeField(help_text="Interval end (UTC).")
    estimate_import_kwh = models.FloatField()
    estimate_export_kwh = models.FloatField(null=True, blank=True)
    estimate_method = models.CharField(max_length=24, blank=True)
    actual_import_kwh = models.FloatField(null=True, blank=True)
    actual_export_kwh = models.FloatField(null=True, blank=True)
    actual_received_at = models.DateTimeField(null=True, blank=True)
    replaced_at = models.DateTimeField(auto_now_add=True, help_text="When the follower saw the actual.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    judged_at = models.DateTimeField(null=True, blank=True)
    bill = models.ForeignKey("Bill", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    proposal = models.ForeignKey(
        VeeException, on_delete=models.PROTECT, null=True, blank=True, related_name="replacements"
    )

    class Meta:
        ordering = ["meter", "ts"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "ts"], name="estimate_replacement_once_per_interval"),
        ]
        indexes = [models.Index(fields=["outcome", "replaced_at"], name="estimate_repl_outcome_idx")]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.ts:%Y-%m-%d %H:%M} {self.estimate_import_kwh} -> {self.actual_import_kwh}"
