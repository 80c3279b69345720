from django.apps import AppConfig


class CommandsConfig(AppConfig):
    name = "commands"
    label = "commands"
    verbose_name = "Meter commands"
