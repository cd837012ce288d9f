"""The public catalogue: concerts with their performances, and the seats of a performance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from tests.conftest import all_databases
from ticketing.concerts.models import Performance, Seat

pytestmark = [all_databases]

UNKNOWN_IDS = ["987654321", "9223372036854775807", "9223372036854775808", "99999999999999999999", "abc", "-1"]


def concert_in(listing: list[dict[str, Any]], concert_id: int) -> dict[str, Any]:
    (concert,) = [c for c in listing if c["id"] == concert_id]
    return concert


def test_the_concert_list_shows_each_concert_with_its_performances(api: APIClient, make_seats: Any) -> None:
    # given a concert with one performance
    (seat,) = make_seats()
    performance = seat.performance

    # when anyone lists the concerts, without a token
    response = api.get("/api/concerts/")

    # then the concert is there with its performance as {id, starts_at, venue, sales_open_at, queue}
    assert response.status_code == 200, response.content
    concert = concert_in(response.json(), performance.concert_id)
    assert concert["title"] == performance.concert.title
    (shown,) = concert["performances"]
    assert set(shown) == {"id", "starts_at", "venue", "sales_open_at", "queue"}
    assert (shown["sales_open_at"], shown["queue"]) == (None, False)
    assert shown["id"] == performance.id
    assert shown["venue"] == "Test Hall"
    assert parse_datetime(shown["starts_at"]) == performance.starts_at


def test_a_concert_lists_its_performances_in_time_order(api: APIClient, make_seats: Any) -> None:
    # given a concert with a late performance created before an early one
    (seat,) = make_seats()
    late = seat.performance
    early = Performance.objects.using("concerts").create(
        concert=late.concert, starts_at=late.starts_at - timedelta(days=1), venue="Early Hall"
    )

    # when the concert is fetched
    response = api.get(f"/api/concerts/{late.concert_id}/")

    # then its performances come earliest first
    assert [p["id"] for p in response.json()["performances"]] == [early.id, late.id]


def test_a_concert_detail_answers_that_concert(api: APIClient, make_seats: Any) -> None:
    # given a concert
    (seat,) = make_seats()
    concert = seat.performance.concert

    # when anyone fetches it
    response = api.get(f"/api/concerts/{concert.id}/")

    # then the answer is that concert and its performances
    assert response.status_code == 200, response.content
    assert response.json()["id"] == concert.id
    assert response.json()["title"] == concert.title
    assert [p["id"] for p in response.json()["performances"]] == [seat.performance_id]


@pytest.mark.parametrize("concert_id", UNKNOWN_IDS)
def test_an_unknown_concert_is_a_404_never_a_500(api: APIClient, concert_id: str) -> None:
    # when someone asks for a concert that does not exist (or an id no database could hold)
    response = api.get(f"/api/concerts/{concert_id}/")

    # then it is a 404
    assert response.status_code == 404


def test_the_seats_of_a_performance_are_listed_with_label_grade_price_and_status(
    api: APIClient, make_seats: Any
) -> None:
    # given a performance with three seats, one of them held
    seats = make_seats(count=3, price=70_000)
    Seat.objects.using("concerts").filter(pk=seats[1].pk).update(status="HELD")

    # when anyone lists its seats
    response = api.get(f"/api/performances/{seats[0].performance_id}/seats/")

    # then each seat is shown as {id, label, grade, price, status}
    assert response.status_code == 200, response.content
    assert response.json() == [
        {"id": seats[0].id, "label": "A-1", "grade": "A", "price": 70_000, "status": "AVAILABLE"},
        {"id": seats[1].id, "label": "A-2", "grade": "A", "price": 70_000, "status": "HELD"},
        {"id": seats[2].id, "label": "A-3", "grade": "A", "price": 70_000, "status": "AVAILABLE"},
    ]


def test_the_seats_of_a_performance_are_only_its_own(api: APIClient, make_seats: Any) -> None:
    # given two performances
    (mine,) = make_seats()
    (other,) = make_seats()

    # when the seats of one are listed
    response = api.get(f"/api/performances/{mine.performance_id}/seats/")

    # then the other's seats are not among them
    assert [s["id"] for s in response.json()] == [mine.id]
    assert other.id not in [s["id"] for s in response.json()]


@pytest.mark.parametrize("performance_id", UNKNOWN_IDS)
def test_the_seats_of_an_unknown_performance_are_a_404(api: APIClient, performance_id: str) -> None:
    # when someone lists the seats of a performance that does not exist
    response = api.get(f"/api/performances/{performance_id}/seats/")

    # then it is a 404
    assert response.status_code == 404
