"""The booking saga on the embedded default: HTTP to the web server, PostgreSQL, Redis as the broker."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.conftest import saga
from tests.saga.conftest import settled
from ticketing.concerts.models import Seat
from ticketing.payments.models import Payment, Wallet

from .conftest import EmbeddedStack, post

pytestmark = [saga]


def test_a_funded_booking_is_confirmed(
    audited: None, healthy: EmbeddedStack, make_user: Any, make_seats: Any, fund: Any, http_for: Any
) -> None:
    # given a user with enough money and a free seat
    user = make_user()
    fund(user.id, 80_000)
    (seat,) = make_seats(price=50_000)

    # when the user books it through the web server
    response = post(http_for(user), healthy, "/api/reservations/", {"seat_id": seat.id})

    # then the saga confirms it: seat sold, wallet charged
    assert response.status_code == 202, response.text
    reservation = settled(response.json()["id"])
    assert (reservation.status, reservation.saga_step) == ("CONFIRMED", "SUCCESS_PAYMENT")
    assert Seat.objects.using("concerts").get(pk=seat.id).status == "SOLD"
    assert Wallet.objects.using("payments").get(user_id=user.id).balance == 30_000
    assert Payment.objects.using("payments").get(reservation_id=reservation.id).status == "SUCCEEDED"


def test_an_unfunded_booking_is_compensated(
    audited: None, healthy: EmbeddedStack, make_user: Any, make_seats: Any, fund: Any, http_for: Any
) -> None:
    # given a user whose wallet holds less than the seat costs
    user = make_user()
    fund(user.id, 10_000)
    (seat,) = make_seats(price=50_000)

    # when the user books it
    response = post(http_for(user), healthy, "/api/reservations/", {"seat_id": seat.id})

    # then the saga compensates: system-canceled, the seat free again, the wallet untouched
    assert response.status_code == 202, response.text
    reservation = settled(response.json()["id"])
    assert (reservation.status, reservation.saga_step) == ("SYSTEM_CANCELED", "SYSTEM_CANCEL_PAYMENT")
    assert Seat.objects.using("concerts").get(pk=seat.id).status == "AVAILABLE"
    assert Wallet.objects.using("payments").get(user_id=user.id).balance == 10_000


def test_users_racing_for_one_seat_through_two_web_processes_get_one_acceptance(
    audited: None, healthy: EmbeddedStack, make_user: Any, make_seats: Any, fund: Any, http_for: Any
) -> None:
    # given twelve funded users and one seat
    users = [make_user() for _ in range(12)]
    for user in users:
        fund(user.id, 100_000)
    (seat,) = make_seats(price=50_000)
    sessions = [http_for(user) for user in users]

    # when they all book it at once, through the two web server processes
    with ThreadPoolExecutor(len(sessions)) as pool:
        responses = list(pool.map(lambda s: post(s, healthy, "/api/reservations/", {"seat_id": seat.id}), sessions))

    # then exactly one is accepted (and confirmed), every other one is told the seat is taken
    assert Counter(r.status_code for r in responses) == {202: 1, 409: 11}, [r.text for r in responses]
    (winner,) = [r for r in responses if r.status_code == 202]
    assert settled(winner.json()["id"]).status == "CONFIRMED"
    charged = [w.user_id for w in Wallet.objects.using("payments").filter(user_id__in=[u.id for u in users])]
    balances = dict(Wallet.objects.using("payments").filter(user_id__in=charged).values_list("user_id", "balance"))
    assert sorted(balances.values()) == [50_000] + [100_000] * 11
