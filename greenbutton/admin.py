from __future__ import annotations

from django.contrib import admin

from greenbutton.models import Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    """Read-only: a subscription is the consumer's consent, changed only by them (or revoked)."""

    list_display = ("id", "user", "application", "start_date", "end_date", "created_at", "revoked_at")
    list_filter = ("application", "revoked_at")
    search_fields = ("user__username", "application__name")
    readonly_fields = ("user", "application", "meters", "scope", "start_date", "end_date", "created_at", "revoked_at")

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
