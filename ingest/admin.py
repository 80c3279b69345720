"""Admin for data hub connectors (configured here) and their pulls (read only: a record of what happened)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest

from ingest.models import DataHubConnector, DataHubPull


class DataHubConnectorForm(forms.ModelForm[DataHubConnector]):
    """The token is write-only: never sent back to the browser; left empty on a change, it stays as it was."""

    base_url = forms.URLField(
        max_length=300,
        assume_scheme="https",
        help_text="The hub's address, e.g. https://hub.example.org (http or https only).",
    )
    token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 60}),
        help_text="Bearer token for the hub (a secret). Leave empty to keep the current one.",
    )

    class Meta:
        model = DataHubConnector
        fields = ["meter", "base_url", "path", "token", "usage_point_id", "enabled"]

    def clean_token(self) -> str:
        token: str = self.cleaned_data.get("token") or ""
        if token:
            return token
        if self.instance.pk and self.instance.token:
            return self.instance.token
        raise forms.ValidationError("A token is needed to pull from the hub.")


@admin.register(DataHubConnector)
class DataHubConnectorAdmin(admin.ModelAdmin[DataHubConnector]):
    form = DataHubConnectorForm
    list_display = [
        "meter",
        "usage_point_id",
        "base_url",
        "enabled",
        "token_masked",
        "last_success_day",
        "last_pull_status",
        "last_pull_at",
    ]
    list_filter = ["enabled"]
    search_fields = ["meter__serial", "usage_point_id", "base_url"]
    raw_id_fields = ["meter"]
    readonly_fields = ["last_success_day", "token_masked"]
    list_select_related = ["meter"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DataHubConnector]:
        latest = DataHubPull.objects.filter(connector=OuterRef("pk")).order_by("-started_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                _last_status=Subquery(latest.values("status")[:1]),
                _last_http_status=Subquery(latest.values("http_status")[:1]),
                _last_started=Subquery(latest.values("started_at")[:1]),
            )
        )

    @admin.display(description="token")
    def token_masked(self, obj: DataHubConnector) -> str:
        return obj.masked_token if obj.token else "—"

    @admin.display(description="last pull", ordering="_last_status")
    def last_pull_status(self, obj: Any) -> str:
        if obj._last_status is None:
            return "never pulled"
        return f"{obj._last_status}" + (f" (HTTP {obj._last_http_status})" if obj._last_http_status else "")

    @admin.display(description="last pull at", ordering="_last_started")
    def last_pull_at(self, obj: Any) -> Any:
        return obj._last_started


@admin.register(DataHubPull)
class DataHubPullAdmin(admin.ModelAdmin[DataHubPull]):
    list_display = [
        "started_at",
        "meter_serial",
        "start_day",
        "end_day",
        "trigger",
        "status",
        "http_status",
        "attempts",
        "readings_stored",
        "duplicates",
        "short_error",
    ]
    list_filter = ["status", "trigger", "http_status"]
    search_fields = ["connector__meter__serial", "connector__usage_point_id", "error"]
    list_select_related = ["connector__meter"]
    date_hierarchy = "started_at"

    @admin.display(description="meter", ordering="connector__meter__serial")
    def meter_serial(self, obj: DataHubPull) -> str:
        return obj.connector.meter.serial

    @admin.display(description="error")
    def short_error(self, obj: DataHubPull) -> str:
        return obj.error if len(obj.error) <= 120 else obj.error[:119] + "…"

    # A record of what happened: nobody adds, edits or deletes one by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DataHubPull | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DataHubPull | None = None) -> bool:
        return False
