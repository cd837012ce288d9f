"""The events payments consumes (see ticketing/events/catalogue.py), each handed to a service."""

from __future__ import annotations

from ticketing.events.catalogue import PAYMENTS, ConcertReserve, PaymentRefund, UserRegistered
from ticketing.events.schema import Consumer

from .services import payment_charge, payment_give_up, payment_refund, wallet_open

consumer = Consumer(PAYMENTS)


def on_concert_reserve_given_up(event: ConcertReserve, *, reason: str) -> None:
    payment_give_up(reservation_id=event.reservation_id, user_id=event.user_id, reason=reason)


@consumer.handles(ConcertReserve, give_up=on_concert_reserve_given_up)
def on_concert_reserve(event: ConcertReserve) -> None:
    payment_charge(reservation_id=event.reservation_id, user_id=event.user_id, amount=event.amount)


@consumer.handles(UserRegistered)
def on_user_registered(event: UserRegistered) -> None:
    wallet_open(user_id=event.user_id)


@consumer.handles(PaymentRefund)
def on_payment_refund(event: PaymentRefund) -> None:
    payment_refund(reservation_id=event.reservation_id, reason=event.reason)
