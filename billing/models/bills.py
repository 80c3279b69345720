"""Bills, their line items and versions, billing runs, off-cycle reads.

Periods are half-open local dates: a bill for October has period_start 1 Oct and period_end 1 Nov.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from mdms.core.models import Account, Meter

__all__ = ["Bill", "BillLineItem", "BillingRun", "OnDemandRead"]


class BillingRun(models.Model):
    """One execution of a bill cycle: which accounts it billed, how far it got, what failed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"  # the run itself broke; failures of single accounts are in errors

    run_date = models.DateField(help_text="The day billed: accounts whose bill-cycle day is this day's.")
    cycle_day = models.PositiveSmallIntegerField()
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    bills_created = models.PositiveIntegerField(default=0)
    # Accounts already billed for the period (by an earlier or a concurrent run): not billed again.
    already_billed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # [{"account": number, "error": text}] for each account that could not be billed.
    errors = models.JSONField(default=list, blank=True)
    # Accounts not billed because their data is incomplete (billing.bills.HOLD_*): a later run of
    # the same date bills them. [{"account": number, "kind": ..., "reason": text}]
    held = models.PositiveIntegerField(default=0)
    holds = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.run_date} (cycle day {self.cycle_day}) {self.status}"

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 1.0


class Bill(models.Model):
    """One version of an account's bill for a period. A re-bill adds version n+1 and keeps the old.

    The unique constraints are the real guard against double billing: two runs racing for the
    same account and period both try version 1, and the database lets one of them in.
    """

    class Kind(models.TextChoices):
        CYCLE = "cycle", "Cycle"
        FINAL = "final", "Final (move-out)"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="bills")
    run = models.ForeignKey(BillingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="bills")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CYCLE)
    period_start = models.DateField()
    period_end = models.DateField(help_text="Exclusive: the day after the last day billed.")
    version = models.PositiveSmallIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    rebill_reason = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    import_kwh = models.DecimalField(max_digits=14, decimal_places=3)
    export_kwh = models.DecimalField(max_digits=14, decimal_places=3)
    net_kwh = models.DecimalField(max_digits=14, decimal_places=3)
    estimated_kwh = models.DecimalField(max_digits=14, decimal_places=3)
    # Share of the imported energy that was estimated, 0..1: shown on the bill, never hidden.
    estimated_share = models.DecimalField(max_digits=5, decimal_places=4)
    max_demand_kw = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    max_demand_at = models.DateTimeField(null=True, blank=True)
    multiplier = models.DecimalField(max_digits=8, decimal_places=3)
    # The full determinants (energy per time-of-use period, days, missing hours) as the CIS gets them.
    determinants = models.JSONField()
    total = models.DecimalField(max_digits=12, decimal_places=2)
    final_read = models.ForeignKey(
        "OnDemandRead", on_delete=models.PROTECT, null=True, blank=True, related_name="final_bills"
    )
    # A final bill's register readings (kWh as metered, before the multiplier), kept with the bill
    # as printed: the start is the meter's reading at the start of the billed days (from its
    # interval data), the end is the move-out read. Null on cycle bills, and where the meter sent none.
    start_register_at = models.DateTimeField(null=True, blank=True)
    start_register_import_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    start_register_export_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    end_register_at = models.DateTimeField(null=True, blank=True)
    end_register_import_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    end_register_export_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # A wrongly issued bill is cancelled (billing.bills.bill_cancel), never deleted: no longer current,
    # hidden from the consumer, kept with who cancelled it and why.
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancel_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["account", "period_start", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "period_start", "period_end", "version"], name="bill_account_period_version"
            ),
            models.UniqueConstraint(
                fields=["account", "period_start", "period_end"],
                condition=Q(is_current=True),
                name="bill_one_current_per_account_period",
            ),
        ]
        indexes = [models.Index(fields=["period_end", "account"], name="bill_period_end_idx")]

    def __str__(self) -> str:
        return f"{self.account} {self.period_start}..{self.period_end} v{self.version}"

    @property
    def is_estimated(self) -> bool:
        return self.estimated_share > 0


class BillLineItem(models.Model):
    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, related_name="line_items")
    position = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=40, help_text="fixed, energy:weekday:peak, demand, export_credit, ...")
    description = models.CharField(max_length=200)
    quantity = models.DecimalField(max_digits=14, decimal_places=4)
    unit = models.CharField(max_length=10)
    rate = models.DecimalField(max_digits=10, decimal_places=5)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    estimated = models.BooleanField(default=False)

    class Meta:
        ordering = ["bill", "position"]
        constraints = [models.UniqueConstraint(fields=["bill", "position"], name="line_item_bill_position")]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"


class OnDemandRead(models.Model):
    """An off-cycle read of a meter requested by billing staff, e.g. for a move-in or move-out."""

    class Purpose(models.TextChoices):
        MOVE_IN = "move_in", "Move-in"
        MOVE_OUT = "move_out", "Move-out"
        CHECK = "check", "Check read"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        TIMED_OUT = "timed_out", "Timed out (estimated)"

    # The command id sent to the meter, matched against the reply's id.
    command_id = models.CharField(max_length=40, unique=True)
    # The command that carries the read (reads before the command framework have none).
    meter_command = models.OneToOneField(
        "commands.MeterCommand", on_delete=models.PROTECT, null=True, blank=True, related_name="on_demand_read"
    )
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="on_demand_reads")
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="on_demand_reads"
    )
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.CHECK)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField()
    timeout_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # The read itself: from the meter's reply, or estimated from interval data after a timeout.
    read_at = models.DateTimeField(null=True, blank=True)
    register_import_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    register_export_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    estimated = models.BooleanField(default=False)
    # The reply's time is far from the request (a stale reply, or a meter clock that is wrong): the
    # read is kept but not trusted, and no final bill is issued from it.
    time_suspect = models.BooleanField(default=False)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "timeout_at"], name="read_status_timeout_idx")]

    def __str__(self) -> str:
        return f"read {self.command_id} of {self.meter} ({self.status})"
