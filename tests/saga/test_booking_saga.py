"""The booking saga end to end: HTTP in, real Celery workers on RabbitMQ, three PostgreSQL databases."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connections

from tests.conftest import PASSWORD, new_client, saga, unique
from ticketing.concerts.models import Reservation, Seat
from ticketing.payments.models import EntryKind, Payment, Wallet, WalletEntry

from .conftest import book, settled, wait_for

pytestmark = [saga]


def test_a_funded_booking_is_confirmed_the_seat_sold_and_the_wallet_charged(
    audited: None, make_user: Any, make_seats: Any, fund: Any, client_for: Any
) -> None:
    # given a user with enough money and a free seat
    user = make_user()
    fund(user.id, 80_000)
    (seat,) = make_seats(price=50_000)

    # when the user books it
    response = book(client_for(user), seat.id)

    # then the booking is accepted, and the saga confirms it
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "PENDING"
    assert response.json()["saga_step"] == "PENDING_PAYMENT"
    reservation = settled(response.json()["id"])
    assert (reservation.status, reservation.saga_step) == ("CONFIRMED", "SUCCESS_PAYMENT")
    assert Seat.objects.using("concerts").get(pk=seat.id).status == "SOLD"
    assert Wallet.objects.using("payments").get(user_id=user.id).balance == 30_000
    assert Payment.objects.using("payments").get(reservation_id=reservation.id).status == "SUCCEEDED"


def test_an_unfunded_booking_is_canceled_by_the_system_and_the_seat_comes_back(
    audited: None, make_user: Any, make_seats: Any, fund: Any, client_for: Any
) -> None:
    # given a user whose wallet holds less than the seat costs
    user = make_user()
    fund(user.id, 10_000)
    (seat,) = make_seats(price=50_000)

    # when the user books it
    response = book(client_for(user), seat.id)

    # then the saga compensates: system-canceled, seat available, wallet untouched
    assert response.status_code == 202
    reservation = settled(response.json()["id"])
    assert (reservation.status, reservation.saga_step) == ("SYSTEM_CANCELED", "SYSTEM_CANCEL_PAYMENT")
    assert reservation.reason == "insufficient balance"
    assert Seat.objects.using("concerts").get(pk=seat.id).status == "AVAILABLE"
    assert Wallet.objects.using("payments").get(user_id=user.id).balance == 10_000
    assert not WalletEntry.objects.using("payments").filter(kind=EntryKind.CHARGE).exists()


def test_signup_opens_a_wallet_through_the_user_registered_event(audited: None) -> None:
    # when someone signs up through the API
    username = unique("newcomer")
    response = new_client().post("/api/auth/signup/", {"username": username, "password": PASSWORD}, format="json")

    # then payments opens their wallet, having only heard the event
    assert response.status_code == 201
    user_id = response.json()["id"]
    wait_for(lambda: Wallet.objects.using("payments").filter(user_id=user_id).exists(), what="the wallet")


def test_twenty_users_racing_for_one_seat_get_one_acceptance_and_nineteen_conflicts(
    audited: None, make_user: Any, make_seats: Any, fund: Any, client_for: Any
) -> None:
    # given twenty funded users and one seat
    users = [make_user() for _ in range(20)]
    for user in users:
        fund(user.id, 100_000)
    (seat,) = make_seats(price=50_000)
    clients = [client_for(user) for user in users]

    # when they all book it at once
    codes = Counter(run_concurrently([lambda c=c: book(c, seat.id).status_code for c in clients]))

    # then exactly one wins, and only that one pays
    assert codes == Counter({202: 1, 409: 19})
    (reservation,) = Reservation.objects.using("concerts").filter(seat_id=seat.id)
    assert settled(reservation.id).status == "CONFIRMED"
    assert Payment.objects.using("payments").filter(status="SUCCEEDED").count() == 1


def test_two_hundred_concurrent_bookings_over_fifty_seats_never_sell_a_seat_twice(
    audited: None, make_user: Any, make_seats: Any, fund: Any, client_for: Any
) -> None:
    # given fifty seats and forty users, half of them able to pay for three seats, half for none
    seats = make_seats(count=50, price=10_000)
    users = [make_user() for _ in range(40)]
    for index, user in enumerate(users):
        fund(user.id, 30_000 if index % 2 == 0 else 5_000)
    clients = [client_for(user) for user in users]

    # when they make two hundred bookings at once, five each, spread over the seats
    calls = [
        (lambda c=clients[n % 40], s=seats[(n * 7) % 50].id: book(c, s).json().get("id"))  # type: ignore[misc]
        for n in range(200)
    ]
    accepted = [rid for rid in run_concurrently(calls) if rid]

    # then every accepted booking settles, and no seat is sold or held twice (the audit checks all)
    reservations = [settled(rid, timeout=60) for rid in accepted]
    confirmed = [r for r in reservations if r.status == "CONFIRMED"]
    assert len({r.seat_id for r in confirmed}) == len(confirmed)
    assert 0 < len(confirmed) <= 20 * 3
    assert Seat.objects.using("concerts").filter(status="SOLD").count() == len(confirmed)
    assert not Seat.objects.using("concerts").filter(status="HELD").exists()


def run_concurrently(calls: list[Any], threads: int = 16) -> list[Any]:
    def call(fn: Any) -> Any:
        try:
            return fn()
        finally:
            for connection in connections.all():
                connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(call, calls))
