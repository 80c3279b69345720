from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "mdms.alerts"
    label = "alerts"
    verbose_name = "Consumer alerts"
