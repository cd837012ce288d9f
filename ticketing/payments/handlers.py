"""The events payments consumes (see ticketing/events/catalogue.py), each handed to a service."""

from __future__ import annotations

from ticketing.events.catalogue import PAYMENTS, ConcertReserve, PaymentRefund, ReservationCanceled, UserRegistered
from ticketing.events.schema import Consumer

from .services import payment_charge, payment_give_up, payment_refund, payment_void, wallet_open

consumer = Consumer(PAYMENTS)


def on_concert_reserve_given_up(event: ConcertReserve, *, reason: str) -> None:
    payment_give_up(reservation_id=event.reservation_id, user_id=event.user_id, reason=reason)


@consumer.handles(ConcertReserve, give_up=on_concert_reserve_given_up)
def on_concert_reserve(event: ConcertReserve) -> None:
    payment_charge(
        reservation_id=event.reservation_id, user_id=event.user_id, amount=event.amount, hold_until=event.hold_until
    )


@consumer.handles(ReservationCanceled)
def on_reservation_canceled(event: ReservationCanceled) -> None:
    payment_void(reservation_id=event.reservation_id, user_id=event.user_id, reason=event.reason)


@consumer.handles(UserRegistered)
def on_user_registered(event: UserRegistered) -> None:
    wallet_open(user_id=event.user_id)


@consumer.handles(PaymentRefund)
def on_payment_refund(event: PaymentRefund) -> None:
    payment_refund(reservation_id=event.reservation_id, reason=event.reason)
