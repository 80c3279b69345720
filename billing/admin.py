"""Admin for billing: bills, runs and on-demand reads, the edit audit trail and the exception queue.

Bills, runs, reads and edits are read-only here: every change goes through billing's services,
which write the audit trail (a change to a bill is a re-bill, billing.bills.bill_rebill; a wrong bill
is cancelled with the "Cancel selected bills" action, billing.bills.bill_cancel, which asks why).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from billing.bills import bill_cancel
from billing.models import (
    Bill,
    BillingRun,
    BillLineItem,
    IntervalEdit,
    OnDemandRead,
    OutboxDelivery,
    OutboxDeliveryAttempt,
    VeeException,
)


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    # Bills are versioned and runs are audit records: a change is a re-bill (billing.bills).
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BillLineItemInline(admin.TabularInline[BillLineItem, Bill]):
    model = BillLineItem
    fields = ("position", "description", "quantity", "unit", "rate", "amount", "estimated")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Bill)
class BillAdmin(ReadOnlyAdmin):
    list_display = ["account", "period_start", "period_end", "version", "is_current", "kind", "import_kwh",
                    "estimated_share", "total", "currency", "created_at"]  # fmt: skip
    list_filter = ["kind", "is_current", "period_end"]
    search_fields = ["account__number", "account__customer__name"]
    list_select_related = ["account"]
    inlines = [BillLineItemInline]
    actions = ["cancel_bills"]

    @admin.action(description="Cancel selected bills (issued wrongly)")
    def cancel_bills(self, request: HttpRequest, queryset: QuerySet[Bill]) -> TemplateResponse | None:
        form = CancelReasonForm(request.POST if "reason" in request.POST else None)
        if form.is_valid():
            cancelled = 0
            for bill in queryset.select_related("account"):
                try:
                    bill_cancel(bill=bill, reason=form.cleaned_data["reason"], cancelled_by=request.user)  # type: ignore[arg-type]
                    cancelled += 1
                except ValidationError as exc:
                    self.message_user(request, f"{bill}: {' '.join(exc.messages)}", messages.WARNING)
            self.message_user(request, f"{cancelled} bill(s) cancelled; the audit log records each.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel bills",
            "bills": queryset.select_related("account"),
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/billing/bill/cancel_bills.html", context)


class CancelReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, label="Why are these bills cancelled?")


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyAdmin):
    list_display = ["run_date", "cycle_day", "status", "done", "total", "bills_created", "already_billed", "failed",
                    "started_at", "finished_at"]  # fmt: skip
    list_filter = ["status"]
    date_hierarchy = "run_date"


@admin.register(OnDemandRead)
class OnDemandReadAdmin(ReadOnlyAdmin):
    list_display = ["meter", "account", "purpose", "status", "requested_at", "read_at", "register_import_kwh",
                    "estimated"]  # fmt: skip
    list_filter = ["status", "purpose", "estimated"]
    search_fields = ["meter__serial", "account__number", "command_id"]
    list_select_related = ["meter", "account"]


@admin.register(IntervalEdit)
class IntervalEditAdmin(admin.ModelAdmin[IntervalEdit]):
    list_display = ["meter", "ts", "action", "old_import_kwh", "new_import_kwh", "edited_by", "edited_at"]
    list_filter = ["action"]
    search_fields = ["meter__serial", "reason"]
    date_hierarchy = "ts"

    # The audit trail is written by billing.vee.services only and never changed afterwards.
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


class OutboxDeliveryAttemptInline(admin.TabularInline[OutboxDeliveryAttempt, OutboxDelivery]):
    model = OutboxDeliveryAttempt
    fields = ("started_at", "finished_at", "outcome", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(ReadOnlyAdmin):
    # The SFTP delivery log (billing.delivery): each version of each BILLDET file and its attempts.
    list_display = ["file_name", "version", "status", "attempts", "found_at", "delivered_at", "next_attempt_at",
                    "destination", "last_error"]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["file_name", "sha256"]
    inlines = [OutboxDeliveryAttemptInline]
