"""Admin for the usage side of billing: the edit audit trail (read-only) and the exception queue."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from billing.models import IntervalEdit, VeeException


@admin.register(IntervalEdit)
class IntervalEditAdmin(admin.ModelAdmin[IntervalEdit]):
    list_display = ["meter", "ts", "action", "old_import_kwh", "new_import_kwh", "edited_by", "edited_at"]
    list_filter = ["action"]
    search_fields = ["meter__serial", "reason"]
    date_hierarchy = "ts"

    # The audit trail is written by billing.services_usage only and never changed afterwards.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: IntervalEdit | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: IntervalEdit | None = None) -> bool:
        return False


@admin.register(VeeException)
class VeeExceptionAdmin(admin.ModelAdmin[VeeException]):
    list_display = ["meter", "kind", "period_start", "period_end", "status", "resolved_by"]
    list_filter = ["status", "kind"]
    search_fields = ["meter__serial"]
    readonly_fields = ["meter", "kind", "period_start", "period_end", "detail", "created_at", "updated_at"]
