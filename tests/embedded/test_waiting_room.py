"""The waiting room on the embedded default: its Lua scripts on the Redis `make run` starts, a place
taken by one web process, handed on by a concerts worker when the booking is confirmed."""

from __future__ import annotations

from typing import Any

from tests.conftest import saga
from tests.saga.conftest import settled, wait_for

from .conftest import QUEUE_ACTIVE_USERS, EmbeddedStack, post

pytestmark = [saga]


def test_an_admitted_user_books_and_hands_the_place_to_the_next(
    audited: None, healthy: EmbeddedStack, make_user: Any, make_performance: Any, fund: Any, http_for: Any
) -> None:
    # given a queued performance on sale now, admitting one user at a time, and two funded users
    assert QUEUE_ACTIVE_USERS == 1
    first_seat, second_seat = make_performance(count=2, queue=True)
    queue = f"{healthy.url}/api/performances/{first_seat.performance_id}/queue/"
    first, second = make_user(), make_user()
    for user in (first, second):
        fund(user.id, 1_000_000)
    first_client, second_client = http_for(first), http_for(second)

    # when both join the waiting room, the first is admitted and the second waits behind
    joined = [client.post(queue, timeout=30) for client in (first_client, second_client)]
    assert [r.status_code for r in joined] == [200, 200], [r.text for r in joined]
    assert [(r.json()["position"], r.json()["admitted"]) for r in joined] == [(0, True), (1, False)]
    # and the second may not book yet
    assert post(second_client, healthy, "/api/reservations/", {"seat_id": second_seat.id}).status_code == 403

    # when the first books, and the saga confirms the booking
    booked = post(first_client, healthy, "/api/reservations/", {"seat_id": first_seat.id})
    assert booked.status_code == 202, booked.text
    assert settled(booked.json()["id"]).status == "CONFIRMED"

    # then the place passes to the second, whose booking goes through as well
    wait_for(lambda: second_client.get(queue, timeout=30).json().get("admitted"), timeout=30, what="the admission")
    assert first_client.get(queue, timeout=30).status_code == 404
    second_booking = post(second_client, healthy, "/api/reservations/", {"seat_id": second_seat.id})
    assert second_booking.status_code == 202, second_booking.text
    assert settled(second_booking.json()["id"]).status == "CONFIRMED"
