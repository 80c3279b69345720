from django.contrib import admin

from monitoring.models import IncidentMeter, OutageIncident, WebhookDelivery


class IncidentMeterInline(admin.TabularInline[IncidentMeter, OutageIncident]):
    model = IncidentMeter
    extra = 0
    raw_id_fields = ["meter"]


@admin.register(OutageIncident)
class OutageIncidentAdmin(admin.ModelAdmin[OutageIncident]):
    list_display = [
        "pk",
        "feeder",
        "region",
        "status",
        "started_at",
        "ended_at",
        "duration_class",
        "affected_customers",
    ]
    list_filter = ["status", "duration_class", "region"]
    inlines = [IncidentMeterInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    list_display = ["pk", "incident", "event", "status", "attempts", "last_status_code", "created_at", "delivered_at"]
    list_filter = ["status", "event"]
