from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from ticketing.outbox.consume import CONSUMER_TASK_OPTIONS, run_consumer

from .services import DB, EVENT_HANDLERS, reservation_expire_holds


@shared_task(name="concerts.handle_event", bind=True, queue="concerts", **CONSUMER_TASK_OPTIONS)
def handle_event(self: Any, envelope: Any) -> None:
    """Consume one event of the concerts queue (see ticketing.outbox.consume)."""
    run_consumer(self, envelope, using=DB, handlers=EVENT_HANDLERS)


@shared_task(name="concerts.expire_holds", ignore_result=True)
def expire_holds() -> int:
    """Beat: cancel reservations whose payment outcome did not come within RESERVATION_HOLD_SECONDS."""
    return reservation_expire_holds(hold_seconds=settings.RESERVATION_HOLD_SECONDS)
