from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .services import reservation_expire_holds, reservation_repair_stuck
from .waitlist import waitlist_offers_lapse


@shared_task(name="concerts.sweep", ignore_result=True)
def sweep() -> int:
    """Beat: compensate holds that expired and sagas whose payment request went dead; lapse offers past time."""
    expired = reservation_expire_holds(hold_seconds=settings.RESERVATION_HOLD_SECONDS)
    return expired + reservation_repair_stuck() + waitlist_offers_lapse()
