from django.apps import AppConfig


class ConcertsConfig(AppConfig):
    name = "ticketing.concerts"
    label = "concerts"

    def ready(self) -> None:
        from ticketing.observability import gauges

        from . import handlers  # noqa: F401 (registers the consumer of concerts' events)
        from .selectors import saga_gauge_samples, waiting_room_lengths

        gauges.register("sagas", saga_gauge_samples)
        gauges.register_waiting_room(waiting_room_lengths)
