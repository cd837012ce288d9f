"""Payments learns that a reservation ended unsold (reservation-canceled, and the hold's deadline in
concert-reserve): a late or replayed request to charge it takes no money."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import all_databases
from ticketing.concerts.models import Reservation
from ticketing.concerts.services import reservation_cancel, reservation_create, reservation_expire_holds
from ticketing.outbox.consume import consume
from ticketing.outbox.models import DeadLetter, OutboxMessage
from ticketing.outbox.services import dead_letter_record
from ticketing.payments.handlers import consumer as payments
from ticketing.payments.models import EntryKind, Payment, Wallet, WalletEntry

pytestmark = [all_databases]


def outbox_envelope(event: str, reservation: Reservation) -> dict[str, Any]:
    row = OutboxMessage.objects.using("concerts").get(event=event, aggregate_id=str(reservation.id))
    return row.envelope()


def a_booking(make_user: Any, make_seats: Any, fund: Any) -> Reservation:
    user = make_user()
    fund(user.id, 100_000)
    (seat,) = make_seats(price=40_000)
    return reservation_create(user_id=user.id, seat_id=seat.id)


def charged(user_id: int) -> bool:
    return WalletEntry.objects.using("payments").filter(wallet__user_id=user_id, kind=EntryKind.CHARGE).exists()


def test_a_replayed_dead_letter_of_concert_reserve_charges_nothing_once_the_reservation_expired(
    make_user: Any, make_seats: Any, fund: Any
) -> None:
    # given a booking whose concert-reserve was set aside as a dead letter in payments
    reservation = a_booking(make_user, make_seats, fund)
    request = outbox_envelope("concert-reserve", reservation)
    dead_letter_record(request, error="gave up after 3 retries: the gateway timed out", using="payments")

    # and its hold expired, which concerts announced and payments consumed
    assert reservation_expire_holds(hold_seconds=0) == 1
    assert consume(outbox_envelope("reservation-canceled", reservation), using="payments", handlers=payments.handlers)

    # when an operator replays the dead letter (days later, as the worker would consume it)
    letter = DeadLetter.objects.using("payments").get(pk=request["event_id"])
    assert consume(letter.envelope, using="payments", handlers=payments.handlers)

    # then no money moved and payments announced nothing: the saga had ended
    assert not charged(reservation.user_id)
    assert Wallet.objects.using("payments").get(user_id=reservation.user_id).balance == 100_000
    payment = Payment.objects.using("payments").get(reservation_id=reservation.id)
    assert (payment.status, payment.amount, payment.reason) == ("FAILED", 0, "hold expired")
    assert not OutboxMessage.objects.using("payments").exists()


def test_a_concert_reserve_past_its_hold_is_refused_even_before_payments_hears_of_the_expiry(
    make_user: Any, make_seats: Any, fund: Any
) -> None:
    # given a booking whose request to charge carries a deadline that has passed
    reservation = a_booking(make_user, make_seats, fund)
    request = outbox_envelope("concert-reserve", reservation)
    request["payload"]["hold_until"] = (timezone.now() - timedelta(seconds=1)).isoformat()

    # when payments consumes it
    assert consume(request, using="payments", handlers=payments.handlers)

    # then nothing is charged, and payment-fail says the hold expired (concerts compensates)
    assert not charged(reservation.user_id)
    (fail,) = OutboxMessage.objects.using("payments").filter(event="payment-fail")
    assert fail.payload == {"reservation_id": reservation.id, "reason": "hold expired"}


def test_a_concert_reserve_within_its_hold_is_charged(make_user: Any, make_seats: Any, fund: Any) -> None:
    # given a fresh booking (its deadline RESERVATION_HOLD_SECONDS away)
    reservation = a_booking(make_user, make_seats, fund)

    # when payments consumes its request
    assert consume(outbox_envelope("concert-reserve", reservation), using="payments", handlers=payments.handlers)

    # then the money is taken
    assert charged(reservation.user_id)
    assert Payment.objects.using("payments").get(reservation_id=reservation.id).status == "SUCCEEDED"


@pytest.mark.parametrize("end", ["expired", "cancelled by its owner"])
def test_concerts_announces_every_pending_reservation_that_ends_unsold(
    make_user: Any, make_seats: Any, fund: Any, end: str
) -> None:
    # given a pending booking
    reservation = a_booking(make_user, make_seats, fund)

    # when it expires, or its owner cancels it
    if end == "expired":
        reservation_expire_holds(hold_seconds=0)
    else:
        reservation_cancel(user_id=reservation.user_id, reservation_id=reservation.id)

    # then reservation-canceled tells payments, with the reason
    reservation.refresh_from_db(using="concerts")
    announced = outbox_envelope("reservation-canceled", reservation)["payload"]
    assert announced == {"reservation_id": reservation.id, "user_id": reservation.user_id, "reason": reservation.reason}


def test_a_reservation_canceled_after_the_charge_leaves_the_payment_to_the_refund(
    make_user: Any, make_seats: Any, fund: Any
) -> None:
    # given a booking already charged
    reservation = a_booking(make_user, make_seats, fund)
    consume(outbox_envelope("concert-reserve", reservation), using="payments", handlers=payments.handlers)

    # when its hold expires anyway and payments hears of it
    reservation_expire_holds(hold_seconds=0)
    consume(outbox_envelope("reservation-canceled", reservation), using="payments", handlers=payments.handlers)

    # then the payment stands as it was (concerts asks for the refund when payment-success reaches it)
    assert Payment.objects.using("payments").get(reservation_id=reservation.id).status == "SUCCEEDED"
