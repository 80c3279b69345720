from django.apps import AppConfig


class LakeConfig(AppConfig):
    name = "lake"
    label = "lake"
    verbose_name = "Data lake"
