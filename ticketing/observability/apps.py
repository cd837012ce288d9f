from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "ticketing.observability"
    label = "observability"

    def ready(self) -> None:
        from . import tracing

        tracing.setup()
