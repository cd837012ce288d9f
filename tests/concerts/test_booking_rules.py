"""The rules of on-sale day at POST /api/reservations/: sales window, seats per user, several seats at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import all_databases, saga
from ticketing.concerts.models import Reservation, ReservationSeat, Seat
from ticketing.outbox.models import OutboxMessage

URL = "/api/reservations/"


def book(client: APIClient, *seat_ids: int) -> Any:
    return client.post(URL, {"seat_ids": list(seat_ids)}, format="json")


def statuses(seats: list[Seat]) -> list[str]:
    by_id = dict(Seat.objects.using("concerts").filter(pk__in=[s.pk for s in seats]).values_list("id", "status"))
    return [by_id[s.pk] for s in seats]


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; each thread closes its own database connections."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = calls[index]()
        finally:
            for connection in connections.all():
                connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# --- Sales window ------------------------------------------------------------------------------------


@all_databases
def test_booking_a_seat_of_a_performance_that_has_started_is_a_409_saying_so(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given a performance that started an hour ago
    (seat, *_) = make_performance(starts_in=-timedelta(hours=1))

    # when a user books one of its seats
    response = book(client_for(make_user()), seat.id)

    # then it is a 409 saying why, and the seat stays free
    assert response.status_code == 409, response.content
    assert "already started" in response.json()["detail"]
    assert statuses([seat]) == ["AVAILABLE"]


@all_databases
def test_booking_before_the_sales_open_is_a_409_naming_the_time(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given a performance whose sales open in an hour
    (seat, *_) = make_performance(sales_open_in=timedelta(hours=1))
    opens_at = seat.performance.sales_open_at.isoformat()

    # when a user books one of its seats now
    response = book(client_for(make_user()), seat.id)

    # then it is a 409 naming the opening time, and nothing is held
    assert response.status_code == 409, response.content
    assert opens_at in response.json()["detail"]
    assert not Reservation.objects.using("concerts").exists()


@all_databases
def test_booking_after_the_sales_opened_is_accepted(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given a performance whose sales opened a minute ago
    (seat, *_) = make_performance(sales_open_in=-timedelta(minutes=1))

    # when a user books a seat
    # then it is accepted
    assert book(client_for(make_user()), seat.id).status_code == 202


# --- Seats per user ----------------------------------------------------------------------------------


@all_databases
@override_settings(MAX_SEATS_PER_USER=4)
def test_a_user_past_the_seat_limit_gets_a_409_naming_it(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given a user who holds 3 seats of a performance (a booking of 2, then of 1)
    seats = make_performance(count=6)
    client = client_for(make_user())
    assert book(client, seats[0].id, seats[1].id).status_code == 202
    assert book(client, seats[2].id).status_code == 202

    # when the user books 2 more
    response = book(client, seats[3].id, seats[4].id)

    # then it is a 409 naming the limit of 4, and neither seat is held
    assert response.status_code == 409, response.content
    assert "At most 4 seats" in response.json()["detail"]
    assert statuses(seats[3:5]) == ["AVAILABLE", "AVAILABLE"]
    # and one more seat (the 4th) is still fine
    assert book(client, seats[3].id).status_code == 202


@all_databases
@override_settings(MAX_SEATS_PER_USER=2)
def test_cancelled_seats_no_longer_count_toward_the_limit(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given a user at the limit of 2 who cancels that booking
    seats = make_performance(count=4)
    client = client_for(make_user())
    reservation_id = book(client, seats[0].id, seats[1].id).json()["id"]
    assert client.post(f"{URL}{reservation_id}/cancel/").status_code == 200

    # when the user books 2 other seats
    # then it is accepted
    assert book(client, seats[2].id, seats[3].id).status_code == 202


@all_databases
@override_settings(MAX_SEATS_PER_USER=2)
def test_the_limit_is_per_performance(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given a user holding 2 seats of one performance
    client = client_for(make_user())
    first, second = make_performance(count=2), make_performance(count=2)
    assert book(client, *(s.id for s in first)).status_code == 202

    # when the user books 2 seats of another performance
    # then it is accepted
    assert book(client, *(s.id for s in second)).status_code == 202


@saga
@override_settings(MAX_SEATS_PER_USER=4)
def test_concurrent_bookings_of_one_user_never_pass_the_limit(
    make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    # given one user, able to pay (so that workers running in the same session confirm the bookings
    # instead of compensating them and freeing seats mid-test), and 10 free seats
    seats = make_performance(count=10)
    user = make_user()
    fund(user.id, 10_000_000)
    clients = [client_for(user) for _ in seats]

    # when the user books each seat in its own request, all at once
    answers = [r.status_code for r in at_once([partial(book, c, s.id) for c, s in zip(clients, seats, strict=True)])]

    # then exactly 4 are accepted, the rest are 409, and the user holds 4 seats
    assert sorted(answers) == [202] * 4 + [409] * 6
    assert ReservationSeat.objects.using("concerts").filter(user_id=user.id, live=True).count() == 4
    assert statuses(seats).count("AVAILABLE") == 6  # the other 4 HELD, or SOLD if workers already confirmed


# --- Several seats in one booking ---------------------------------------------------------------------


@all_databases
def test_a_booking_of_several_seats_holds_them_all_for_one_payment_of_their_sum(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given three free seats of 30,000, 40,000 and 50,000 won
    seats = make_performance(count=3)
    for seat, price in zip(seats, (30_000, 40_000, 50_000), strict=True):
        Seat.objects.using("concerts").filter(pk=seat.pk).update(price=price)
    user = make_user()

    # when a user books them in one request (listed in a chosen order)
    response = book(client_for(user), seats[2].id, seats[0].id, seats[1].id)

    # then one PENDING reservation holds all three, seat_id is the first, the amount is the sum
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["seat_ids"] == [seats[2].id, seats[0].id, seats[1].id]
    assert (body["seat_id"], body["amount"], body["status"]) == (seats[2].id, 120_000, "PENDING")
    assert statuses(seats) == ["HELD"] * 3
    # and one concert-reserve asks payments for the sum
    (message,) = OutboxMessage.objects.using("concerts").filter(event="concert-reserve")
    assert {k: message.payload[k] for k in ("reservation_id", "user_id", "amount")} == {
        "reservation_id": body["id"],
        "user_id": user.id,
        "amount": 120_000,
    }
    # and the reservation shows every seat when read back
    assert client_for(user).get(f"{URL}{body['id']}/").json()["seat_ids"] == body["seat_ids"]


@all_databases
def test_a_single_seat_booking_answers_seat_ids_too(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given a free seat
    (seat, *_) = make_performance()

    # when a user books it the old way, with seat_id
    response = client_for(make_user()).post(URL, {"seat_id": seat.id}, format="json")

    # then the answer carries seat_id and seat_ids
    assert response.status_code == 202
    assert (response.json()["seat_id"], response.json()["seat_ids"]) == (seat.id, [seat.id])


@all_databases
def test_a_booking_with_a_taken_seat_holds_nothing_and_names_it(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given three seats, the second and third already held by someone else
    seats = make_performance(count=3)
    assert book(client_for(make_user()), seats[1].id, seats[2].id).status_code == 202

    # when another user books all three
    response = book(client_for(make_user()), *(s.id for s in seats))

    # then it is a 409 naming the taken seats, and the free one is not held
    assert response.status_code == 409, response.content
    detail = response.json()["detail"]
    assert f"seat {seats[1].id} (HELD), seat {seats[2].id} (HELD); nothing was held" in detail
    assert f"seat {seats[0].id} " not in detail
    assert statuses(seats) == ["AVAILABLE", "HELD", "HELD"]
    assert Reservation.objects.using("concerts").count() == 1


@all_databases
def test_seats_of_two_performances_in_one_booking_are_a_409(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given seats of two performances
    (first, *_), (second, *_) = make_performance(), make_performance()

    # when a user books one of each in one request
    response = book(client_for(make_user()), first.id, second.id)

    # then it is a 409 and nothing is held
    assert response.status_code == 409
    assert "one performance" in response.json()["detail"]
    assert statuses([first, second]) == ["AVAILABLE", "AVAILABLE"]


@all_databases
@override_settings(MAX_SEATS_PER_USER=4)
@pytest.mark.parametrize(
    ("seat_ids", "why"),
    [([], "empty"), ([1, 2, 3, 4, 5], "five"), ([7, 7], "repeated"), (["1"], "string"), (5, "not a list")],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_malformed_seat_list_is_a_400_naming_seat_ids(
    make_user: Any, client_for: Any, seat_ids: Any, why: str
) -> None:
    # when a user books with an empty, too long, repeating or mistyped list
    response = client_for(make_user()).post(URL, {"seat_ids": seat_ids}, format="json")

    # then it is a 400 naming seat_ids
    assert response.status_code == 400, (why, response.content)
    assert "seat_ids" in response.json()


@saga
def test_two_users_racing_for_overlapping_seats_one_wins_whole_the_other_nothing(
    make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    for _ in range(5):
        # given four seats and two users (able to pay) who want seats {1, 2, 3} and {3, 4}
        a, b, c, d = make_performance(count=4)
        users = make_user(), make_user()
        for user in users:
            fund(user.id, 10_000_000)
        alice, bob = (client_for(user) for user in users)

        # when both book at the same moment
        answers = at_once([partial(book, alice, a.id, b.id, c.id), partial(book, bob, d.id, c.id)])

        # then exactly one is accepted and holds all its seats; the other holds none
        codes = sorted(r.status_code for r in answers)
        assert codes == [202, 409], [r.content for r in answers]
        (won,) = [r.json() for r in answers if r.status_code == 202]
        held = {s.pk for s, status in zip((a, b, c, d), statuses([a, b, c, d]), strict=True) if status == "HELD"}
        assert held == set(won["seat_ids"])
        assert Reservation.objects.using("concerts").filter(seat__performance=a.performance).count() == 1
