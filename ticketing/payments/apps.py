from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "ticketing.payments"
    label = "payments"

    def ready(self) -> None:
        from ticketing.observability import metrics

        from . import handlers  # registers the consumer of payments' events

        metrics.events_known(service=handlers.consumer.service.name, events=handlers.consumer.handlers)
