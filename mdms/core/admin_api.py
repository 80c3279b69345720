"""Admin for API tokens (staff issue and revoke them here) and the read-only audit log."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from mdms.core.api_tokens import api_token_issue, api_token_revoke
from mdms.core.models_api import ApiToken, AuditLog


class ApiTokenIssueForm(forms.ModelForm[ApiToken]):
    scopes = forms.MultipleChoiceField(choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "scopes"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ["name", "prefix", "scopes", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    actions = ["revoke_tokens"]
    form = ApiTokenIssueForm

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        # A token is never edited after issue: revoke it and issue another.
        return ["name", "scopes", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"] if obj else []

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoked tokens stay, so the audit log's targets stay meaningful

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        if request.method == "POST":
            form = ApiTokenIssueForm(request.POST)
            if form.is_valid():
                user = request.user if isinstance(request.user, User) else None
                issued = api_token_issue(
                    name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], created_by=user
                )
                self.message_user(
                    request, f"Token issued. Copy its key now, it is not shown again: {issued.key}", messages.WARNING
                )
                return HttpResponseRedirect(reverse("admin:core_apitoken_changelist"))
        return super().add_view(request, form_url, extra_context)

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        user = request.user if isinstance(request.user, User) else None
        count = sum(api_token_revoke(token=token, revoked_by=user) for token in queryset)
        self.message_user(request, f"{count} token(s) revoked.")


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin[AuditLog]):
    list_display = ["at", "actor_label", "action", "target"]
    list_filter = ["action"]
    search_fields = ["actor_label", "target"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False
