from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "mdms.core"
    label = "core"
    verbose_name = "Master data"
