from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "ticketing.outbox"
    label = "outbox"
    verbose_name = "Outbox and inbox"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from ticketing.observability import gauges
        from ticketing.young_tables import young_tables_tune

        post_migrate.connect(young_tables_tune, dispatch_uid="young_tables_tune")

        from . import checks  # noqa: F401 (registers the catalogue's checks)
        from .selectors import outbox_gauge_samples

        gauges.register("outbox", outbox_gauge_samples)
