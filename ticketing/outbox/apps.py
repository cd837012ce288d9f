from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "ticketing.outbox"
    label = "outbox"
    verbose_name = "Outbox and inbox"

    def ready(self) -> None:
        from ticketing.observability import gauges

        from . import checks  # noqa: F401 (registers the catalogue's checks)
        from .selectors import outbox_gauge_samples

        gauges.register("outbox", outbox_gauge_samples)
