from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "ticketing.payments"
    label = "payments"

    def ready(self) -> None:
        from ticketing.observability import metrics

        from .services import EVENT_HANDLERS

        metrics.events_known(service=self.label, events=EVENT_HANDLERS)
