from django.contrib import admin

from alerts.models import AlertRule, Notification


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin[AlertRule]):
    list_display = ["pk", "user", "meter", "kind", "threshold", "minutes", "muted", "armed_at", "checked_at"]
    list_filter = ["kind", "muted"]
    raw_id_fields = ["user", "meter"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin[Notification]):
    list_display = ["pk", "user", "meter", "kind", "created_at", "read_at", "email_state", "email_attempts"]
    list_filter = ["kind", "email_state"]
    raw_id_fields = ["user", "meter", "rule"]
    readonly_fields = ["breach_key", "created_at"]
