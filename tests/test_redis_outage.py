"""REDIS_URL's Redis stopped: the cache's uses fail open (sign-up, login, booking go on), the waiting room
fails closed (503 with Retry-After); never a 500."""

from __future__ import annotations

from typing import Any

from rest_framework_simplejwt.tokens import AccessToken

from tests.conftest import PASSWORD, all_databases, new_client, unique
from ticketing.observability import metrics

pytestmark = [all_databases]


def fail_opens(use: str) -> float:
    return metrics.CACHE_FAIL_OPEN.labels(use)._value.get()


def test_with_redis_down_a_person_signs_up_logs_in_and_books_an_unqueued_performance(
    make_performance: Any, cache_redis_down: None
) -> None:
    # given Redis stopped, a performance without a waiting room and a newcomer
    (seat, *_) = make_performance(queue=False)
    client = new_client()
    username = unique("outage")
    throttled_before = fail_opens("throttle")

    # when they sign up, mistype their password once, log in and book
    signup = client.post("/api/auth/signup/", {"username": username, "password": PASSWORD}, format="json")
    wrong = client.post("/api/auth/login/", {"username": username, "password": "not-it-1"}, format="json")
    login = client.post("/api/auth/login/", {"username": username, "password": PASSWORD}, format="json")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['access']}")
    booking = client.post("/api/reservations/", {"seat_id": seat.id}, format="json")

    # then each gets its usual answer, and the throttles that let them through were counted
    assert (signup.status_code, wrong.status_code, login.status_code) == (201, 401, 200), login.content
    assert AccessToken(login.json()["access"])["user_id"] == str(signup.json()["id"])
    assert booking.status_code == 202, booking.content
    assert fail_opens("throttle") >= throttled_before + 2


def test_with_redis_down_a_queued_performance_is_a_503_not_a_500(
    make_performance: Any, make_user: Any, client_for: Any, cache_redis_down: None
) -> None:
    # given Redis stopped and a performance with a waiting room
    (seat, *_) = make_performance(queue=True)
    client = client_for(make_user())

    # when a user books it
    response = client.post("/api/reservations/", {"seat_id": seat.id}, format="json")

    # then the waiting room fails closed: 503 with Retry-After
    assert response.status_code == 503
    assert response.headers.get("Retry-After")
