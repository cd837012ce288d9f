"""The events concerts consumes (see ticketing/events/catalogue.py), each handed to a service."""

from __future__ import annotations

import logging

from ticketing.events.catalogue import CONCERTS, PaymentFail, PaymentRefunded, PaymentSuccess, SeatReleased
from ticketing.events.schema import Consumer

from .services import reservation_compensate, reservation_confirm
from .waitlist import waitlist_offer_released_seats

logger = logging.getLogger(__name__)

consumer = Consumer(CONCERTS)


@consumer.handles(PaymentSuccess)
def on_payment_success(event: PaymentSuccess) -> None:
    reservation_confirm(reservation_id=event.reservation_id, payment_id=event.payment_id)


@consumer.handles(PaymentFail)
def on_payment_fail(event: PaymentFail) -> None:
    reservation_compensate(reservation_id=event.reservation_id, reason=event.reason)


@consumer.handles(PaymentRefunded)
def on_payment_refunded(event: PaymentRefunded) -> None:
    # The saga's last word after a late payment; its inbox row completes the reservation's timeline.
    logger.info("payment %s for reservation %s refunded", event.payment_id, event.reservation_id)


@consumer.handles(SeatReleased)
def on_seat_released(event: SeatReleased) -> None:
    waitlist_offer_released_seats(performance_id=event.performance_id, seat_ids=event.seat_ids)
