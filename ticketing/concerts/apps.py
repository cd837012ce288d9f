from django.apps import AppConfig


class ConcertsConfig(AppConfig):
    name = "ticketing.concerts"
    label = "concerts"

    def ready(self) -> None:
        from ticketing.observability import gauges, metrics

        from . import handlers  # registers the consumer of concerts' events
        from .models import ReservationStatus
        from .selectors import saga_gauge_samples, waiting_room_lengths
        from .transitions import RESERVATION_TRANSITIONS

        gauges.register("sagas", saga_gauge_samples)
        gauges.register_waiting_room(waiting_room_lengths)
        metrics.saga_outcomes_known(sorted(RESERVATION_TRANSITIONS[ReservationStatus.PENDING]))
        metrics.events_known(service=handlers.consumer.service.name, events=handlers.consumer.handlers)
