from django.contrib.auth import views as auth_views
from django.urls import path

from portal import views
from portal.views import billing_staff as billing
from portal.views import (
    billing_tariffs,
    meter_commands,
    operator,
    operator_forecast,
    operator_lists,
    operator_notifications,
)
from portal.views import consumer_alerts as alerts

urlpatterns = [
    path("", views.home, name="home"),
    path("meters/<int:meter_pk>/", views.consumer_dashboard, name="consumer_dashboard"),
    path("meters/<int:meter_pk>/today.json", views.consumer_today, name="consumer_today"),
    path("meters/<int:meter_pk>/download/", views.consumer_download, name="consumer_download"),
    path("bills/<int:bill_pk>/", views.bill_detail, name="bill_detail"),
    path("meters/<int:meter_pk>/alerts/", alerts.consumer_alerts, name="consumer_alerts"),
    path("meters/<int:meter_pk>/alerts/<int:rule_pk>/", alerts.consumer_alert_edit, name="consumer_alert_edit"),
    path(
        "meters/<int:meter_pk>/alerts/<int:rule_pk>/delete/", alerts.consumer_alert_delete, name="consumer_alert_delete"
    ),
    path("meters/<int:meter_pk>/alerts/<int:rule_pk>/mute/", alerts.consumer_alert_mute, name="consumer_alert_mute"),
    path("notifications/", alerts.notifications, name="notifications"),
    path("notifications/read/", alerts.notifications_read_all, name="notifications_read_all"),
    path("notifications/<int:notification_pk>/read/", alerts.notification_read, name="notification_read"),
    path("login/", auth_views.LoginView.as_view(template_name="portal/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(template_name="portal/password_change.html"),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="portal/password_change_done.html"),
        name="password_change_done",
    ),
    # Operators (and staff superusers).
    path("operator/", operator.operator_dashboard, name="operator_dashboard"),
    path("operator/anomalies/", operator.operator_anomalies, name="operator_anomalies"),
    path("operator/meters/<int:meter_pk>/", operator.operator_meter, name="operator_meter"),
    path("operator/meters/", operator_lists.operator_meters, name="operator_meters"),
    path("operator/outages/", operator_lists.operator_incidents, name="operator_incidents"),
    path("operator/outages/<int:incident_pk>/", operator_lists.operator_incident, name="operator_incident"),
    path("operator/ingest/", operator.operator_ingest, name="operator_ingest"),
    path("operator/forecast/", operator_forecast.operator_forecast, name="operator_forecast"),
    path(
        "operator/forecast/warnings/<int:warning_pk>/acknowledge/",
        operator_forecast.operator_forecast_acknowledge,
        name="operator_forecast_acknowledge",
    ),
    path("operator/ingest/live/", operator.operator_ingest_live, name="operator_ingest_live"),
    path("operator/notifications/", operator_notifications.operator_notifications, name="operator_notifications"),
    # Billing staff (and staff superusers).
    path("billing/", billing.billing_runs, name="billing_runs"),
    path("billing/runs/live/", billing.billing_runs_live, name="billing_runs_live"),
    path("billing/exceptions/", billing.billing_vee_queue, name="billing_vee_queue"),
    path("billing/exceptions/<int:exception_pk>/", billing.billing_vee_exception, name="billing_vee_exception"),
    path("billing/reads/", billing.billing_reads, name="billing_reads"),
    path("billing/reads/live/", billing.billing_reads_live, name="billing_reads_live"),
    path("billing/lookup/", billing.billing_lookup, name="billing_lookup"),
    path("billing/deliveries/", billing.billing_deliveries, name="billing_deliveries"),
    path("billing/accounts/<int:account_pk>/", billing.billing_account, name="billing_account"),
    path("billing/bills/<int:bill_pk>/", billing.billing_bill, name="billing_bill"),
    path("billing/bills/<int:bill_pk>/intervals/", billing.billing_bill_intervals, name="billing_bill_intervals"),
    path("billing/meters/<int:meter_pk>/", billing.billing_meter, name="billing_meter"),
    path("billing/meters/<int:meter_pk>/exchange/", billing.billing_meter_exchange, name="billing_meter_exchange"),
    path("meters/<int:meter_pk>/commands/", meter_commands.meter_command_send, name="meter_command_send"),
    path("billing/tariffs/", billing_tariffs.billing_tariffs, name="billing_tariffs"),
    path("billing/tariffs/<int:tariff_pk>/", billing_tariffs.billing_tariff, name="billing_tariff"),
]
