from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "ticketing.payments"
    label = "payments"

    def ready(self) -> None:
        from . import handlers  # noqa: F401 (registers the consumer of payments' events)
