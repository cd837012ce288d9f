from django.apps import AppConfig


class ConcertsConfig(AppConfig):
    name = "ticketing.concerts"
    label = "concerts"
