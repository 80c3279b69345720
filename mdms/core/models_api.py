"""API tokens for machine clients (the CIS, the billing system) and the audit log of staff actions.

Imported by mdms.core.models so that Django sees them as core models.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token with scopes. Only a SHA-256 of the key is kept; the key is shown once at issue.

    Keys are 256-bit random values, so a fast hash is enough (a slow KDF protects guessable human
    passwords) and every API request can check its token without a noticeable cost.
    """

    class Scope(models.TextChoices):
        CIS_READ = "cis_read", "Read-only CIS: master data, readings, events, anomalies, outages"
        BILLING = "billing", "Billing: determinants, bills, on-demand reads"
        METER_ADMIN = "meter_admin", "Meter administration: register, disable, enable"
        COMMANDS = "commands", "Meter commands: reads, disconnect, reconnect, clock sync, demand reset"

    name = models.CharField(max_length=80, help_text="Who uses it, e.g. 'SAP IS-U production'.")
    # The first characters of the key, kept in clear so staff can tell tokens apart in lists.
    prefix = models.CharField(max_length=12, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="A list of scope names.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditLog(models.Model):
    """One staff action that changed something a customer or the CIS relies on. Append-only."""

    class Action(models.TextChoices):
        METER_REGISTER = "meter_register", "Meter registered"
        METER_DISABLE = "meter_disable", "Meter disabled"
        METER_ENABLE = "meter_enable", "Meter enabled"
        METER_CERTIFICATE = "meter_certificate", "Meter certificate issued"
        METER_EXCHANGE = "meter_exchange", "Meter exchanged"
        METER_MULTIPLIER = "meter_multiplier", "Meter multiplier changed"
        READING_EDIT = "reading_edit", "Interval reading edited"
        REBILL = "rebill", "Bill re-issued"
        BILL_CANCEL = "bill_cancel", "Bill cancelled"
        BILL_RUN_START = "bill_run_start", "Billing run started"
        ON_DEMAND_READ = "on_demand_read", "On-demand read requested"
        METER_COMMAND = "meter_command", "Command sent to a meter"
        TOKEN_ISSUE = "token_issue", "API token issued"
        TOKEN_REVOKE = "token_revoke", "API token revoked"
        TARIFF_VERSION = "tariff_version", "Tariff price version added"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    # Who acted, as text: the username, or "token:<name>" for a machine client (kept if the user goes).
    actor_label = models.CharField(max_length=160)
    action = models.CharField(max_length=20, choices=Action.choices)
    target = models.CharField(max_length=160, help_text="What was acted on, e.g. 'meter:SN123'.")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["action", "at"], name="audit_action_at_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target}"
