"""Admin for commands: read-only, since every change goes through commands.services (claimed, audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from commands.models import MeterCommand, MeterCommandEvent


class MeterCommandEventInline(admin.TabularInline[MeterCommandEvent, MeterCommand]):
    model = MeterCommandEvent
    extra = 0
    can_delete = False
    readonly_fields = ["status", "at", "attempt", "detail"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MeterCommand)
class MeterCommandAdmin(admin.ModelAdmin[MeterCommand]):
    list_display = ["created_at", "meter", "kind", "status", "priority", "attempts", "finished_at", "failure"]
    list_filter = ["kind", "status", "priority"]
    search_fields = ["meter__serial", "command_id", "idempotency_key", "reason"]
    list_select_related = ["meter"]
    inlines = [MeterCommandEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
