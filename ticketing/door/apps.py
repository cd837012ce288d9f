from django.apps import AppConfig


class DoorConfig(AppConfig):
    name = "ticketing.door"
    label = "door"
    verbose_name = "Door (checking tickets in)"
