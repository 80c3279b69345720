from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "mdms.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"
