from __future__ import annotations

from django.contrib import admin

from forecast.models import CapacityWarning, ForecastRun


@admin.register(ForecastRun)
class ForecastRunAdmin(admin.ModelAdmin[ForecastRun]):
    list_display = ["origin", "model", "computed_at", "duration_s"]
    date_hierarchy = "origin"


@admin.register(CapacityWarning)
class CapacityWarningAdmin(admin.ModelAdmin[CapacityWarning]):
    list_display = ["feeder", "opened_at", "closed_at", "peak_kw", "peak_at", "capacity_kw", "acknowledged_at"]
    list_filter = ["closed_at"]
    raw_id_fields = ["opened_by", "last_run", "acknowledged_by"]
