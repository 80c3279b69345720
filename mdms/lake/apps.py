from django.apps import AppConfig


class LakeConfig(AppConfig):
    name = "mdms.lake"
    label = "lake"
    verbose_name = "Data lake"
