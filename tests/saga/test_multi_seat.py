"""Bookings of several seats through the whole saga: paid once, confirmed, compensated and cancelled together."""

from __future__ import annotations

from typing import Any

from django.test import override_settings

from tests.conftest import saga
from ticketing.concerts.models import ReservationSeat, Seat
from ticketing.concerts.services import reservation_expire_holds
from ticketing.payments.models import Payment, Wallet

from .conftest import RowLock, settled, wait_for

pytestmark = [saga]

URL = "/api/reservations/"


def book_seats(client: Any, seats: list[Seat]) -> Any:
    return client.post(URL, {"seat_ids": [s.id for s in seats]}, format="json")


def statuses(seats: list[Seat]) -> list[str]:
    return [Seat.objects.using("concerts").get(pk=s.pk).status for s in seats]


def live_lines(reservation_id: int) -> int:
    return ReservationSeat.objects.using("concerts").filter(reservation_id=reservation_id, live=True).count()


def test_a_paid_booking_of_three_seats_sells_all_three_for_one_payment(
    audited: None, make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    # given a user with 200,000 won and three seats of 50,000
    user = make_user()
    fund(user.id, 200_000)
    seats = make_performance(count=3, price=50_000)

    # when the user books the three in one request
    reservation = settled(book_seats(client_for(user), seats).json()["id"])

    # then the booking is CONFIRMED, all three seats SOLD, and one payment of 150,000 was taken
    assert (reservation.status, reservation.amount) == ("CONFIRMED", 150_000)
    assert statuses(seats) == ["SOLD"] * 3
    (payment,) = Payment.objects.using("payments").filter(reservation_id=reservation.id)
    assert (payment.status, payment.amount) == ("SUCCEEDED", 150_000)
    assert Wallet.objects.using("payments").get(user_id=user.id).balance == 50_000


def test_a_refused_payment_releases_every_seat(
    audited: None, make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    # given a user who can pay for one seat but books three
    user = make_user()
    fund(user.id, 60_000)
    seats = make_performance(count=3, price=50_000)

    # when the saga runs
    reservation = settled(book_seats(client_for(user), seats).json()["id"])

    # then the booking is compensated, every seat is free again and the user paid nothing
    assert reservation.status == "SYSTEM_CANCELED"
    assert statuses(seats) == ["AVAILABLE"] * 3
    assert live_lines(reservation.id) == 0
    assert Wallet.objects.using("payments").get(user_id=user.id).balance == 60_000
    # and the seats can be booked again
    other = make_user()
    fund(other.id, 200_000)
    assert settled(book_seats(client_for(other), seats).json()["id"]).status == "CONFIRMED"


def test_cancelling_a_confirmed_booking_of_two_seats_frees_both_and_refunds_the_sum(
    audited: None, make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    # given a confirmed booking of two seats of 40,000
    user = make_user()
    fund(user.id, 100_000)
    seats = make_performance(count=2, price=40_000)
    client = client_for(user)
    reservation = settled(book_seats(client, seats).json()["id"])
    assert reservation.status == "CONFIRMED"

    # when the owner cancels it
    response = client.post(f"{URL}{reservation.id}/cancel/")

    # then both seats are free at once and the 80,000 come back through the saga
    assert response.status_code == 200
    assert response.json()["seat_ids"] == [s.id for s in seats]
    assert statuses(seats) == ["AVAILABLE", "AVAILABLE"]
    assert live_lines(reservation.id) == 0
    wait_for(
        lambda: Wallet.objects.using("payments").get(user_id=user.id).balance == 100_000,
        what="the refund of both seats",
    )


def test_an_expired_hold_releases_every_seat(
    audited: None, make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    # given a booking of two seats whose payment is stuck on the wallet's lock
    user = make_user()
    wallet = fund(user.id, 100_000)
    seats = make_performance(count=2, price=30_000)
    locker = RowLock("payments", f"SELECT 1 FROM payments_wallet WHERE id = {wallet.id} FOR UPDATE")
    reservation_id = book_seats(client_for(user), seats).json()["id"]
    wait_for(locker.has_waiter, what="the payments consumer to block on the wallet")

    # when the hold expires, and then the payment goes through
    assert reservation_expire_holds(hold_seconds=0) == 1
    locker.release()

    # then the booking stays cancelled, both seats are free, and the late charge is refunded
    reservation = settled(reservation_id)
    assert (reservation.status, reservation.reason) == ("SYSTEM_CANCELED", "hold expired")
    assert statuses(seats) == ["AVAILABLE", "AVAILABLE"]
    wait_for(
        lambda: Payment.objects.using("payments").filter(reservation_id=reservation_id, status="REFUNDED").exists(),
        what="the refund",
    )
    assert Wallet.objects.using("payments").get(user_id=user.id).balance == 100_000


@override_settings(QUEUE_ACTIVE_USERS=1)
def test_in_a_waiting_room_a_confirmed_booking_hands_the_place_on(
    audited: None, make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    # given a queued performance of one place: a funded user admitted, another waiting
    seats = make_performance(count=2, price=30_000, queue=True)
    queue = f"/api/performances/{seats[0].performance_id}/queue/"
    first, second = make_user(), make_user()
    fund(first.id, 100_000)
    first_client, second_client = client_for(first), client_for(second)
    assert first_client.post(queue).json()["admitted"] is True
    assert second_client.post(queue).json()["position"] == 1

    # when the admitted user books two seats and the saga confirms them (in the workers)
    reservation = settled(book_seats(first_client, seats).json()["id"])
    assert reservation.status == "CONFIRMED"

    # then the place has passed to the one waiting
    wait_for(lambda: second_client.get(queue).json()["admitted"], what="the place to be handed on")
