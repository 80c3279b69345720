from django.apps import AppConfig


class ForecastConfig(AppConfig):
    name = "mdms.forecast"
    label = "forecast"
    verbose_name = "Demand forecast"
