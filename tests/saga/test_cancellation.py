"""User cancellation: at once while PENDING, with a refund through the saga once CONFIRMED."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from tests.conftest import saga
from ticketing.concerts.models import Performance, Reservation, Seat
from ticketing.payments.models import Payment, Wallet

from .conftest import Booking, RowLock, book, settled, wait_for

pytestmark = [saga]


def cancel(client: Any, reservation_id: int) -> Any:
    return client.post(f"/api/reservations/{reservation_id}/cancel/")


def refunded(reservation_id: int) -> bool:
    return Payment.objects.using("payments").filter(reservation_id=reservation_id, status="REFUNDED").exists()


def test_cancelling_a_confirmed_booking_frees_the_seat_and_refunds_the_money(
    audited: None, confirmed_booking: Booking
) -> None:
    # when the owner of a confirmed booking cancels it
    response = cancel(confirmed_booking.client, confirmed_booking.reservation_id)

    # then it is CANCELED at once, the seat is free, and the refund follows through the saga
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["saga_step"]) == ("CANCELED", "USER_CANCEL_PAYMENT")
    assert Seat.objects.using("concerts").get(pk=confirmed_booking.seat_id).status == "AVAILABLE"
    wait_for(lambda: refunded(confirmed_booking.reservation_id), what="the refund")
    assert Wallet.objects.using("payments").get(user_id=confirmed_booking.user.id).balance == 100_000


def test_cancelling_a_pending_booking_refunds_the_payment_that_arrives_later(
    audited: None, stalled_payment: tuple[Booking, RowLock]
) -> None:
    # given a booking whose payment is held up in the payments worker
    booking, locker = stalled_payment

    # when the owner cancels before the payment is through, then the payment goes through
    assert cancel(booking.client, booking.reservation_id).json()["status"] == "CANCELED"
    locker.release()

    # then the late charge is refunded and the booking stays cancelled
    wait_for(lambda: refunded(booking.reservation_id), what="the refund")
    assert Wallet.objects.using("payments").get(user_id=booking.user.id).balance == 100_000
    assert Reservation.objects.using("concerts").get(pk=booking.reservation_id).status == "CANCELED"


def test_cancelling_twice_is_a_no_op(audited: None, make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a cancelled booking
    user = make_user()
    (seat,) = make_seats()
    client = client_for(user)
    reservation_id = book(client, seat.id).json()["id"]
    first = cancel(client, reservation_id)

    # when it is cancelled again
    second = cancel(client, reservation_id)

    # then the answer is the same and nothing changed
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json()


def test_others_reservations_cannot_be_cancelled(
    audited: None, make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given someone else's booking
    (seat,) = make_seats()
    reservation_id = book(client_for(make_user()), seat.id).json()["id"]

    # when another user tries to cancel it (or a reservation that does not exist)
    intruder = client_for(make_user())

    # then both are 404
    assert cancel(intruder, reservation_id).status_code == 404
    assert cancel(intruder, 999_999_999).status_code == 404


def test_a_system_canceled_booking_cannot_be_cancelled(
    audited: None, make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given a booking the system cancelled (no wallet, so the payment failed)
    user = make_user()
    (seat,) = make_seats()
    client = client_for(user)
    reservation = settled(book(client, seat.id).json()["id"])
    assert reservation.status == "SYSTEM_CANCELED"

    # when the user cancels it
    response = cancel(client, reservation.id)

    # then it is a conflict naming the state
    assert response.status_code == 409
    assert "SYSTEM_CANCELED" in response.json()["detail"]


def test_a_confirmed_booking_cannot_be_cancelled_once_the_performance_started(
    audited: None, confirmed_booking: Booking
) -> None:
    # given a confirmed booking for a performance that has begun
    Performance.objects.using("concerts").filter(seats=confirmed_booking.seat_id).update(
        starts_at=timezone.now() - timedelta(minutes=1)
    )

    # when the user cancels it
    response = cancel(confirmed_booking.client, confirmed_booking.reservation_id)

    # then it is refused, and the booking stays sold
    assert response.status_code == 409
    assert Seat.objects.using("concerts").get(pk=confirmed_booking.seat_id).status == "SOLD"
