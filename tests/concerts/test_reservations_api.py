"""POST and GET /api/reservations/, without workers: the saga's first step and what the caller may see.

The test's transaction never commits, so the relay never runs and every reservation stays PENDING.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.conftest import all_databases
from ticketing.concerts.models import Reservation, Seat
from ticketing.outbox.models import OutboxMessage

pytestmark = [all_databases]

URL = "/api/reservations/"


def book(client: APIClient, seat_id: Any, **headers: str) -> Any:
    return client.post(URL, {"seat_id": seat_id}, format="json", **headers)


def seat_status(seat: Seat) -> str:
    return Seat.objects.using("concerts").get(pk=seat.pk).status


def test_booking_a_free_seat_is_accepted_as_a_pending_reservation(
    make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given a user and a free seat
    user = make_user()
    (seat,) = make_seats(price=50_000)

    # when the user books it
    response = book(client_for(user), seat.id)

    # then it is accepted (202) as a PENDING reservation awaiting payment, for the seat's price
    assert response.status_code == 202, response.content
    body = response.json()
    assert {k: body[k] for k in ("seat_id", "amount", "status", "saga_step")} == {
        "seat_id": seat.id,
        "amount": 50_000,
        "status": "PENDING",
        "saga_step": "PENDING_PAYMENT",
    }
    reservation = Reservation.objects.using("concerts").get(pk=body["id"])
    assert (reservation.user_id, reservation.seat_id) == (user.id, seat.id)


def test_booking_holds_the_seat(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a free seat
    (seat,) = make_seats()

    # when a user books it
    assert book(client_for(make_user()), seat.id).status_code == 202

    # then the seat is HELD
    assert seat_status(seat) == "HELD"


def test_booking_asks_payments_for_the_money_through_the_concerts_outbox(
    make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given a free seat
    user = make_user()
    (seat,) = make_seats(price=42_000)

    # when a user books it
    reservation_id = book(client_for(user), seat.id).json()["id"]

    # then a concert-reserve event with the reservation, user, amount and the hold's deadline waits in the
    # concerts outbox
    message = OutboxMessage.objects.using("concerts").get(event="concert-reserve")
    created_at = Reservation.objects.using("concerts").get(pk=reservation_id).created_at
    deadline = (created_at + timedelta(seconds=settings.RESERVATION_HOLD_SECONDS)).astimezone(UTC)
    assert message.payload == {
        "reservation_id": reservation_id,
        "user_id": user.id,
        "amount": 42_000,
        "hold_until": deadline.isoformat().replace("+00:00", "Z"),
    }
    assert (message.aggregate_id, message.correlation_id) == (str(reservation_id), str(reservation_id))
    assert message.state == "PENDING"


def test_booking_a_held_seat_is_a_409(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a seat another user has just booked
    (seat,) = make_seats()
    assert book(client_for(make_user()), seat.id).status_code == 202

    # when a second user books it
    response = book(client_for(make_user()), seat.id)

    # then it is a 409 and there is still one reservation for the seat
    assert response.status_code == 409, response.content
    assert Reservation.objects.using("concerts").filter(seat_id=seat.id).count() == 1


def test_booking_a_sold_seat_is_a_409(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a sold seat
    (seat,) = make_seats()
    Seat.objects.using("concerts").filter(pk=seat.pk).update(status="SOLD")

    # when a user books it
    response = book(client_for(make_user()), seat.id)

    # then it is a 409 and nothing was written
    assert response.status_code == 409
    assert not Reservation.objects.using("concerts").filter(seat_id=seat.id).exists()
    assert not OutboxMessage.objects.using("concerts").exists()


def test_booking_an_unknown_seat_is_a_404(make_user: Any, client_for: Any) -> None:
    # when a user books a seat that does not exist
    response = book(client_for(make_user()), 987_654_321)

    # then it is a 404
    assert response.status_code == 404, response.content


@pytest.mark.parametrize(
    "seat_id",
    ["1", 1.5, True, -1, 0, 2**63, 2**70, None, [1], {"id": 1}, "", "x"],
    ids=["string", "fraction", "boolean", "negative", "zero", "2**63", "2**70", "null", "list", "object", "empty", "x"],
)
def test_booking_with_a_malformed_seat_id_is_a_400_naming_it(
    make_user: Any, make_seats: Any, client_for: Any, seat_id: Any
) -> None:
    # given a free seat
    make_seats()

    # when a user books with a seat_id that is not a positive whole number that fits a database id
    response = book(client_for(make_user()), seat_id)

    # then it is a 400 naming seat_id, and nothing was booked
    assert response.status_code == 400, response.content
    assert "seat_id" in response.json()
    assert not Reservation.objects.using("concerts").exists()


def test_booking_without_a_seat_id_is_a_400_naming_it(make_user: Any, client_for: Any) -> None:
    # when a user books without saying which seat
    response = client_for(make_user()).post(URL, {}, format="json")

    # then it is a 400 naming seat_id
    assert response.status_code == 400
    assert "seat_id" in response.json()


def test_booking_with_a_malformed_json_body_is_a_400(make_user: Any, client_for: Any) -> None:
    # when the body is not JSON
    response = client_for(make_user()).post(URL, b"{bad", content_type="application/json")

    # then it is a 400, never a 500
    assert response.status_code == 400


def test_booking_without_a_token_is_a_401(api: APIClient, make_seats: Any) -> None:
    # given a free seat
    (seat,) = make_seats()

    # when someone without a token books it
    response = book(api, seat.id)

    # then it is a 401 and the seat stays free
    assert response.status_code == 401
    assert seat_status(seat) == "AVAILABLE"


def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(
    make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given a booking made with an Idempotency-Key
    client = client_for(make_user())
    (seat,) = make_seats()
    first = book(client, seat.id, HTTP_IDEMPOTENCY_KEY="retry-me-1")
    assert first.status_code == 202

    # when the client retries it with the same key
    again = book(client, seat.id, HTTP_IDEMPOTENCY_KEY="retry-me-1")

    # then the answer is the first one and the seat was booked once
    assert (again.status_code, again.json()) == (202, first.json())
    assert Reservation.objects.using("concerts").filter(seat_id=seat.id).count() == 1


def test_listing_reservations_without_a_token_is_a_401(api: APIClient) -> None:
    # when someone without a token lists reservations
    # then it is a 401
    assert api.get(URL).status_code == 401


def test_the_reservation_list_shows_only_the_callers_reservations(
    make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given two users with a booking each, and one with two
    alice, bob = make_user(), make_user()
    seats = make_seats(count=3)
    alice_client, bob_client = client_for(alice), client_for(bob)
    first = book(alice_client, seats[0].id).json()["id"]
    book(bob_client, seats[1].id)
    second = book(alice_client, seats[2].id).json()["id"]

    # when alice lists her reservations
    response = alice_client.get(URL)

    # then she sees hers, newest first, and not bob's
    assert response.status_code == 200
    assert [r["id"] for r in response.json()] == [second, first]


def test_a_reservation_detail_shows_its_state(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a user's booking
    client = client_for(make_user())
    (seat,) = make_seats(price=30_000)
    reservation_id = book(client, seat.id).json()["id"]

    # when the user fetches it
    response = client.get(f"{URL}{reservation_id}/")

    # then it shows {id, seat_id, amount, status, saga_step, reason}
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("id", "seat_id", "amount", "status", "saga_step", "reason")} == {
        "id": reservation_id,
        "seat_id": seat.id,
        "amount": 30_000,
        "status": "PENDING",
        "saga_step": "PENDING_PAYMENT",
        "reason": "",
    }


def test_another_users_reservation_is_a_404(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given alice's booking
    (seat,) = make_seats()
    reservation_id = book(client_for(make_user()), seat.id).json()["id"]

    # when bob fetches it
    response = client_for(make_user()).get(f"{URL}{reservation_id}/")

    # then it is a 404, as if it did not exist
    assert response.status_code == 404


@pytest.mark.parametrize("reservation_id", ["987654321", "99999999999999999999"])
def test_an_unknown_reservation_is_a_404(make_user: Any, client_for: Any, reservation_id: str) -> None:
    # when a user fetches a reservation that does not exist
    response = client_for(make_user()).get(f"{URL}{reservation_id}/")

    # then it is a 404, never a 500
    assert response.status_code == 404


def test_bookings_past_a_users_rate_are_a_429_with_retry_after(
    make_user: Any, make_seats: Any, client_for: Any, settings: Any
) -> None:
    # given a user who booked as often as the rate allows
    settings.BOOKING_RATE_PER_USER = "2/min"
    client = client_for(make_user())
    first, second, third = make_seats(count=3)
    assert [book(client, s.id).status_code for s in (first, second)] == [202, 202]

    # when they book once more
    response = book(client, third.id)

    # then it is a 429 saying when to try again, and the seat is untouched
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert seat_status(third) == "AVAILABLE"


def test_the_booking_rate_counts_each_user_on_its_own_and_never_reads(
    make_user: Any, make_seats: Any, client_for: Any, settings: Any
) -> None:
    # given a user past the booking rate
    settings.BOOKING_RATE_PER_USER = "1/min"
    busy = client_for(make_user())
    first, second = make_seats(count=2)
    book(busy, first.id)

    # when that user lists their bookings, and another user books
    listing = busy.get(URL)
    other = book(client_for(make_user()), second.id)

    # then neither is throttled
    assert (listing.status_code, other.status_code) == (200, 202)
