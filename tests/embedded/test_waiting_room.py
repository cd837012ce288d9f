"""The waiting room on the `make run` default: its Redis, the web front's fast path, a booking once admitted."""

from __future__ import annotations

from typing import Any

from tests.conftest import saga
from tests.saga.conftest import settled, wait_for

from .conftest import EmbeddedStack, post

pytestmark = [saga]


def test_two_join_one_books_and_the_place_passes_to_the_other(
    audited: None, healthy: EmbeddedStack, make_user: Any, make_performance: Any, fund: Any, http_for: Any
) -> None:
    # given a queued performance on sale now (one admitted at a time on this stack) and two funded users
    seats = make_performance(queue=True, price=10_000)
    queue = f"{healthy.url}/api/performances/{seats[0].performance_id}/queue/"
    first, second = make_user(), make_user()
    for user in (first, second):
        fund(user.id, 50_000)
    first_http, second_http = http_for(first), http_for(second)

    # when both join through the web front
    joined = [client.post(queue, timeout=30) for client in (first_http, second_http)]

    # then the first is admitted, the second waits first in line, each told when to ask again
    assert [j.status_code for j in joined] == [200, 200], [j.text for j in joined]
    assert [(j.json()["position"], j.json()["admitted"]) for j in joined] == [(0, True), (1, False)]
    assert all(j.json()["poll_after_seconds"] > 0 for j in joined)
    # and the second's poll with its queue ticket alone (no token) answers the same place
    ticket = joined[1].json()["ticket"]
    polled = second_http.get(queue, headers={"Authorization": "", "X-Queue-Ticket": ticket}, timeout=30)
    assert (polled.status_code, polled.json()["position"]) == (200, 1)

    # when the admitted one books and the saga confirms it
    booked = post(first_http, healthy, "/api/reservations/", {"seat_id": seats[0].id})
    assert booked.status_code == 202, booked.text
    assert settled(booked.json()["id"]).status == "CONFIRMED"

    # then the place passes to the second, who books in turn
    def admitted() -> bool:
        return bool(second_http.get(queue, headers={"X-Queue-Ticket": ticket}, timeout=30).json()["admitted"])

    wait_for(admitted, timeout=20, what="the second user's admission")
    second_booking = post(second_http, healthy, "/api/reservations/", {"seat_id": seats[1].id})
    assert second_booking.status_code == 202, second_booking.text
    assert settled(second_booking.json()["id"]).status == "CONFIRMED"
