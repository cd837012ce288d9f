from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from ticketing.outbox.consume import CONSUMER_TASK_OPTIONS, run_consumer

from . import waitlist
from .services import DB, EVENT_HANDLERS, reservation_expire_holds, reservation_repair_stuck

HANDLERS = {**EVENT_HANDLERS, "seat-released": waitlist.handle_seat_released}


@shared_task(name="concerts.handle_event", bind=True, queue="concerts", **CONSUMER_TASK_OPTIONS)
def handle_event(self: Any, envelope: Any) -> None:
    """Consume one event of the concerts queue (see ticketing.outbox.consume)."""
    run_consumer(self, envelope, using=DB, handlers=HANDLERS)


@shared_task(name="concerts.sweep", ignore_result=True)
def sweep() -> int:
    """Beat: compensate holds that expired and sagas whose payment request went dead; lapse offers past time."""
    expired = reservation_expire_holds(hold_seconds=settings.RESERVATION_HOLD_SECONDS)
    return expired + reservation_repair_stuck() + waitlist.waitlist_offers_lapse()
