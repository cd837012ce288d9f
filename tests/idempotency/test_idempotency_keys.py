"""An Idempotency-Key makes a retried POST return the first answer instead of doing it again."""

from __future__ import annotations

from typing import Any

from django.test import override_settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from tests.conftest import all_databases, waiting_room_down
from ticketing.concerts.models import Reservation
from ticketing.idempotency.models import IdempotencyKey
from ticketing.idempotency.services import idempotent
from ticketing.payments.models import WalletEntry

pytestmark = [all_databases]


def test_a_retried_booking_returns_the_first_answer_and_books_once(
    make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given a booking made with a key
    client = client_for(make_user())
    (seat,) = make_seats()
    first = client.post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    # when it is retried with the same key and body
    retry = client.post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    # then the retry gets the same 202 (not a 409 for its own seat) and only one reservation exists
    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert Reservation.objects.using("concerts").filter(seat_id=seat.id).count() == 1


def test_the_same_key_with_a_different_body_is_refused(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a key used for one seat
    client = client_for(make_user())
    seat, other = make_seats(count=2)
    client.post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    # when it is used for another seat
    response = client.post("/api/reservations/", {"seat_id": other.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    # then it is 422 and the other seat is untouched
    assert response.status_code == 422
    assert not Reservation.objects.using("concerts").filter(seat_id=other.id).exists()


def test_keys_belong_to_their_user(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a key used by one user
    seat, other = make_seats(count=2)
    client_for(make_user()).post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    # when another user sends the same key
    response = client_for(make_user()).post(
        "/api/reservations/", {"seat_id": other.id}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    # then it is their own, new request
    assert response.status_code == 202


def test_a_retried_wallet_charge_tops_up_once(make_user: Any, client_for: Any) -> None:
    # given a charge made with a key
    user = make_user()
    client = client_for(user)
    first = client.post("/api/wallet/charge/", {"amount": 5_000}, format="json", HTTP_IDEMPOTENCY_KEY="c-1")

    # when it is retried, and then a second charge is made without a key
    retry = client.post("/api/wallet/charge/", {"amount": 5_000}, format="json", HTTP_IDEMPOTENCY_KEY="c-1")
    fresh = client.post("/api/wallet/charge/", {"amount": 5_000}, format="json")

    # then the retry is the first answer, and only the keyless one charged again
    assert first.json() == retry.json() == {"balance": 5_000}
    assert fresh.json() == {"balance": 10_000}
    assert WalletEntry.objects.using("payments").filter(wallet__user_id=user.id).count() == 2


def test_an_error_answer_is_replayed_too(make_user: Any, client_for: Any) -> None:
    # given a charge refused as bad input, made with a key
    client = client_for(make_user())
    first = client.post("/api/wallet/charge/", {"amount": 0}, format="json", HTTP_IDEMPOTENCY_KEY="c-2")

    # when it is retried with the same key
    retry = client.post("/api/wallet/charge/", {"amount": 0}, format="json", HTTP_IDEMPOTENCY_KEY="c-2")

    # then the same 400 comes back
    assert (first.status_code, retry.status_code) == (400, 400)
    assert retry.json() == first.json()


def test_an_overlong_key_is_a_bad_request(make_user: Any, client_for: Any) -> None:
    response = client_for(make_user()).post(
        "/api/wallet/charge/", {"amount": 1}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()


def test_a_cancel_key_reused_on_another_reservation_is_refused(
    make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given two bookings, the first cancelled with a key
    client = client_for(make_user())
    seat_a, seat_b = make_seats(count=2)
    first = client.post("/api/reservations/", {"seat_id": seat_a.id}, format="json").json()["id"]
    second = client.post("/api/reservations/", {"seat_id": seat_b.id}, format="json").json()["id"]
    client.post(f"/api/reservations/{first}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")

    # when the same key is sent to cancel the second
    response = client.post(f"/api/reservations/{second}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")

    # then it is 422 (not the first cancel's answer) and the second booking is untouched
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
    assert Reservation.objects.using("concerts").get(id=second).status == "PENDING"


def test_a_retried_cancel_returns_the_first_answer(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a booking cancelled with a key
    client = client_for(make_user())
    (seat,) = make_seats()
    booking = client.post("/api/reservations/", {"seat_id": seat.id}, format="json").json()["id"]
    first = client.post(f"/api/reservations/{booking}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-2")

    # when the cancel is retried with the same key on the same reservation
    retry = client.post(f"/api/reservations/{booking}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-2")

    # then the first answer comes back, replayed
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"


def test_a_503_is_not_stored_and_the_retry_books(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given a booking of a queued performance answered 503 while the waiting room was down
    (seat, *_) = make_performance(queue=True)
    client = client_for(make_user())
    with waiting_room_down():
        down = client.post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-503")
    assert down.status_code == 503 and down.headers.get("Retry-After")

    # when the waiting room is back, the user is admitted and the shop retries with the same key
    assert client.post(f"/api/performances/{seat.performance_id}/queue/").json()["admitted"]
    retry = client.post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-503")

    # then the retry is a fresh answer that books, not the stored 503
    assert retry.status_code == 202, retry.content
    assert "Idempotent-Replayed" not in retry.headers
    assert Reservation.objects.using("concerts").filter(seat_id=seat.id).count() == 1


def test_a_403_before_admission_is_not_stored(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given a booking refused 403 because the user had not joined the waiting room yet
    (seat, *_) = make_performance(queue=True)
    client = client_for(make_user())
    early = client.post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-403")
    assert early.status_code == 403

    # when the user is admitted and sends the same request with the same key
    assert client.post(f"/api/performances/{seat.performance_id}/queue/").json()["admitted"]
    retry = client.post("/api/reservations/", {"seat_id": seat.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-403")

    # then it books
    assert retry.status_code == 202, retry.content
    assert IdempotencyKey.objects.using("concerts").get(key="k-403").status_code == 202


@override_settings(BOOKING_RATE_PER_USER="1/minute")
def test_a_429_is_not_stored(make_user: Any, make_seats: Any, client_for: Any) -> None:
    # given a user whose second booking in a minute was throttled, sent with a key
    seat, other = make_seats(count=2)
    client = client_for(make_user())
    client.post("/api/reservations/", {"seat_id": seat.id}, format="json")
    throttled = client.post("/api/reservations/", {"seat_id": other.id}, format="json", HTTP_IDEMPOTENCY_KEY="k-429")

    # then it is a 429 with Retry-After, and the key is left free for the retry
    assert throttled.status_code == 429 and throttled.headers.get("Retry-After")
    assert not IdempotencyKey.objects.using("concerts").filter(key="k-429").exists()


def keyed_request(key: str) -> Request:
    factory_request = APIRequestFactory().post("/api/reservations/", {}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    return Request(factory_request, parsers=[JSONParser()])


def test_a_429_raised_inside_the_handler_is_not_stored_and_the_retry_runs_again() -> None:
    # given a handler that is throttled the first time and answers the second
    calls: list[int] = []

    def handle() -> Response:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            raise exceptions.Throttled(wait=7)
        return Response({"booked": True}, status=202)

    # when a request with a key is answered 429, then retried with the same key
    first = idempotent(keyed_request("k-429-inside"), user_id=1, scope="test", using="concerts", handle=handle)
    retry = idempotent(keyed_request("k-429-inside"), user_id=1, scope="test", using="concerts", handle=handle)

    # then the 429 keeps its Retry-After and is not replayed: the retry runs the handler and is stored
    assert (first.status_code, first["Retry-After"]) == (429, "7")
    assert (retry.status_code, retry.data, calls) == (202, {"booked": True}, [1, 2])
    assert IdempotencyKey.objects.using("concerts").get(key="k-429-inside").status_code == 202


def test_a_404_for_a_cancel_is_kept_like_any_final_answer(make_user: Any, client_for: Any) -> None:
    # given a cancel of a reservation that does not exist, sent with a key
    client = client_for(make_user())
    first = client.post("/api/reservations/987654/cancel/", HTTP_IDEMPOTENCY_KEY="k-404")

    # when it is retried with the same key
    retry = client.post("/api/reservations/987654/cancel/", HTTP_IDEMPOTENCY_KEY="k-404")

    # then the retry gets the stored 404 again
    assert (first.status_code, retry.status_code) == (404, 404)
    assert retry["Idempotent-Replayed"] == "true"
