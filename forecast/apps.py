from django.apps import AppConfig


class ForecastConfig(AppConfig):
    name = "forecast"
    label = "forecast"
    verbose_name = "Demand forecast"
