from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "ticketing.payments"
    label = "payments"
