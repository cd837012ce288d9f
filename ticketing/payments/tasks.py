from __future__ import annotations

from typing import Any

from celery import shared_task

from ticketing.outbox.consume import CONSUMER_TASK_OPTIONS, run_consumer

from .services import DB, EVENT_HANDLERS, GIVE_UP_HANDLERS


@shared_task(name="payments.handle_event", bind=True, queue="payments", **CONSUMER_TASK_OPTIONS)
def handle_event(self: Any, envelope: Any) -> None:
    """Consume one event of the payments queue (see ticketing.outbox.consume)."""
    run_consumer(self, envelope, using=DB, handlers=EVENT_HANDLERS, give_up=GIVE_UP_HANDLERS)
