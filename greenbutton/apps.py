from django.apps import AppConfig


class GreenButtonConfig(AppConfig):
    name = "greenbutton"
    label = "greenbutton"
    verbose_name = "Green Button Connect"
