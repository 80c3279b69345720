"""Alert rules a consumer sets on a meter, and the notifications their breaches produced.

A notification is the record that a breach was told: its `breach_key` is unique, so whatever runs
twice or at once, a breach makes one row, and the e-mail follows that row (sent once it is accepted
by the mail backend, retried otherwise; never a second row).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from mdms.core.models import Meter

# Form and database bounds of a rule's figures: beyond them a value is a typo, not a household.
MAX_DAILY_KWH = 10_000
MAX_BILL = 1_000_000
MAX_POWER_KW = 1_000
MAX_MINUTES = 1_440


class AlertRule(models.Model):
    class Kind(models.TextChoices):
        DAILY_KWH = "daily_kwh", "Daily usage above"
        PROJECTED_BILL = "projected_bill", "Projected bill above"
        POWER_OVER = "power_over", "Power above, for a while"
        NO_DATA = "no_data", "No data from the meter for a day"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_rules")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # kWh a day (daily_kwh), the bill's currency (projected_bill), kW (power_over); none for no_data.
    threshold = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # power_over: how long power must stay above the threshold.
    minutes = models.PositiveSmallIntegerField(null=True, blank=True)
    muted = models.BooleanField(default=False)
    # Breaches that were over before this instant are never told: set at creation and on unmute,
    # so unmuting does not replay what happened while muted (a breach still going on is told).
    armed_at = models.DateTimeField()
    # The last evaluation (projected_bill rules are evaluated at most every PROJECTION_EVERY).
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["meter", "kind", "pk"]
        indexes = [models.Index(fields=["muted", "kind"], name="alertrule_muted_kind_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="no_data") | Q(threshold__gt=0), name="alertrule_threshold_positive"
            ),
            models.CheckConstraint(
                condition=~Q(kind="power_over") | Q(minutes__gte=1, minutes__lte=MAX_MINUTES),
                name="alertrule_power_minutes_1_1440",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.meter_id} for {self.user_id}"

    def describe(self, currency: str = "") -> str:
        """The rule in words, as the consumer set it."""
        if self.kind == self.Kind.DAILY_KWH:
            return f"Daily usage above {self.threshold} kWh"
        if self.kind == self.Kind.PROJECTED_BILL:
            return f"Projected bill above {self.threshold}{' ' + currency if currency else ''}"
        if self.kind == self.Kind.POWER_OVER:
            return f"Power above {self.threshold} kW for {self.minutes} minutes or more"
        return "No data from the meter for 24 hours"


class Notification(models.Model):
    class EmailState(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed, will retry"
        ABANDONED = "abandoned", "Failed, gave up"
        NO_ADDRESS = "no_address", "No e-mail address"
        MUTED = "muted", "Not sent: the rule was muted"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    # The rule may be deleted later; what it told stays in the consumer's list.
    rule = models.ForeignKey(AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=AlertRule.Kind.choices)
    # "<rule>:<kind>:<what>": a local day, a billing period, or the start of an episode. Unique:
    # the guard that makes a second evaluation, or two at once, tell a breach once.
    breach_key = models.CharField(max_length=120, unique=True)
    subject = models.CharField(max_length=200)
    message = models.TextField()
    value = models.FloatField(help_text="The figure that breached: kWh, money, kW or hours silent.")
    episode_start = models.DateTimeField(null=True, blank=True)
    episode_end = models.DateTimeField(null=True, blank=True, help_text="Last seen in breach (power_over).")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    email_state = models.CharField(max_length=12, choices=EmailState.choices, default=EmailState.PENDING)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_next_at = models.DateTimeField(null=True, blank=True, help_text="Not before: the retry backoff.")
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.CharField(max_length=500, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The header's unread count and the consumer's list.
            models.Index(fields=["user", "read_at"], name="notification_user_read_idx"),
            # The operators' volume by day.
            models.Index(fields=["created_at"], name="notification_created_idx"),
            # The e-mail sweep.
            models.Index(fields=["email_state", "email_next_at"], name="notification_email_idx"),
        ]

    def __str__(self) -> str:
        return self.subject
