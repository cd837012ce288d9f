"""The waiting room of a queued performance, against real Redis (and PostgreSQL where bookings are made)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from django.test import override_settings
from django.utils import timezone

from tests.conftest import all_databases, saga
from tests.saga.conftest import wait_for
from ticketing.concerts.models import Seat
from ticketing.concerts.services import reservation_confirm
from ticketing.concerts.waiting_room import queue_advance, queue_join, queue_saga_finished, queue_status
from ticketing.observability import gauges, metrics

QUEUE = "/api/performances/{}/queue/"


def join_all(performance_id: int, users: range) -> None:
    for user in users:
        queue_join(performance_id=performance_id, user_id=user, opens_at=None)


def positions(performance_id: int, users: range) -> list[int | None]:
    return [
        place.position if (place := queue_status(performance_id=performance_id, user_id=u)) else None for u in users
    ]


# --- Admission and order (Redis alone) ---------------------------------------------------------------


@override_settings(QUEUE_ACTIVE_USERS=5)
def test_concurrent_joins_never_admit_more_than_the_cap(room: int) -> None:
    # given 60 users joining an open waiting room of 5 places, all at the same moment
    barrier = threading.Barrier(60)

    def join(user: int) -> None:
        barrier.wait()
        queue_join(performance_id=room, user_id=user, opens_at=None)

    threads = [threading.Thread(target=join, args=(u,)) for u in range(1, 61)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # then exactly 5 are admitted and the 55 others wait at positions 1 to 55
    places = [queue_status(performance_id=room, user_id=u) for u in range(1, 61)]
    assert sum(1 for p in places if p and p.admitted) == 5
    assert sorted(p.position for p in places if p and not p.admitted) == list(range(1, 56))


@override_settings(QUEUE_ACTIVE_USERS=2)
def test_after_the_opening_users_are_admitted_in_join_order(room: int) -> None:
    # given six users who joined an open waiting room of 2 places, one after another
    join_all(room, range(1, 7))

    # then the first two are admitted (position 0) and the others wait in join order
    assert positions(room, range(1, 7)) == [0, 0, 1, 2, 3, 4]
    first = queue_status(performance_id=room, user_id=1)
    assert first is not None and first.admitted and first.admitted_until is not None
    # for the first window (presence: an admission nobody uses ends soon)
    assert timezone.now() + timedelta(seconds=50) < first.admitted_until < timezone.now() + timedelta(seconds=61)

    # when the first admitted user's booking is confirmed, then the next in line gets the place at once
    queue_saga_finished(performance_id=room, user_id=1, confirmed=True)
    assert positions(room, range(1, 7)) == [None, 0, 0, 1, 2, 3]


@override_settings(QUEUE_ACTIVE_USERS=1)
def test_joining_again_keeps_the_place(room: int) -> None:
    # given three users in line
    join_all(room, range(1, 4))

    # when the third joins again (a reload, a second tab)
    again = queue_join(performance_id=room, user_id=3, opens_at=None)

    # then it keeps position 2
    assert (again.position, again.admitted) == (2, False)


@override_settings(QUEUE_ACTIVE_USERS=3)
def test_the_pre_queue_is_shuffled_once_at_the_opening_and_latecomers_go_behind(room: int) -> None:
    # given 40 users who join, in order, before the sales open (in 1.5 s)
    opens_at = timezone.now() + timedelta(seconds=1.5)
    early = range(1, 41)
    for user in early:
        place = queue_join(performance_id=room, user_id=user, opens_at=opens_at)
        # then while waiting for the opening they have no position yet, only the opening time
        assert (place.position, place.admitted) == (None, False)
        assert place.opens_at is not None and abs((place.opens_at - opens_at).total_seconds()) < 0.01

    # when the sales open, two latecomers join, and the timer ticks
    time.sleep(max(0.0, (opens_at - timezone.now()).total_seconds()) + 0.1)
    join_all(room, range(41, 43))
    queue_advance(performance_id=room, opens_at=opens_at)

    # then the early users hold the first 40 turns (3 admitted, 37 waiting) in an order other than their joining
    order = positions(room, early)
    assert order.count(0) == 3
    assert sorted(p for p in order if p) == list(range(1, 38))
    waiting_in_join_order = [p for p in order if p]
    assert waiting_in_join_order != sorted(waiting_in_join_order)  # 37! orders: a match means no shuffle
    # and the latecomers wait behind all of them, in their own arrival order
    assert positions(room, range(41, 43)) == [38, 39]
    # and the shuffle happened once: polling and joining again change nothing
    join_all(room, early)
    assert positions(room, early) == order


@override_settings(QUEUE_ACTIVE_USERS=1, QUEUE_ADMISSION_SECONDS=1)
def test_an_admission_expires_and_its_place_is_handed_on(room: int) -> None:
    # given one admitted user and one waiting
    join_all(room, range(1, 3))
    assert positions(room, range(1, 3)) == [0, 1]

    # when the admission's second is over, the first is out of the room at once
    time.sleep(1.1)
    assert positions(room, range(1, 3)) == [None, 1]

    # and when the timer ticks, the second is admitted (polls alone never admit anyone)
    queue_advance(performance_id=room, opens_at=None)
    assert positions(room, range(1, 3)) == [None, 0]


@override_settings(QUEUE_ACTIVE_USERS=1, QUEUE_RETRY_GRACE_SECONDS=1)
def test_a_cancelled_booking_ends_the_admission_after_the_grace_unless_retried(room: int) -> None:
    # given an admitted user whose booking was cancelled, and one waiting
    join_all(room, range(1, 3))
    queue_saga_finished(performance_id=room, user_id=1, confirmed=False)

    # then within the grace the user is still admitted, the other still waits
    assert positions(room, range(1, 3)) == [0, 1]
    # and after the grace the place goes to the next in line (at the timer's next tick)
    time.sleep(1.1)
    queue_advance(performance_id=room, opens_at=None)
    assert positions(room, range(1, 3)) == [None, 0]


# --- Through the API -------------------------------------------------------------------------------


@all_databases
def test_joining_a_queued_performance_answers_the_place(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given a queued performance on sale now
    (seat, *_) = make_performance(queue=True)
    client = client_for(make_user())

    # when a user joins its waiting room, and polls
    joined = client.post(QUEUE.format(seat.performance_id))
    polled = client.get(QUEUE.format(seat.performance_id))

    # then both answer the admission (the room is empty), when to ask again and a queue ticket
    assert joined.status_code == 200, joined.content
    assert (joined.json()["position"], joined.json()["admitted"]) == (0, True)
    assert joined.json()["admitted_until"]
    assert joined.json()["poll_after_seconds"] > 0
    assert joined.json()["ticket"]
    assert polled.json() == joined.json()


@all_databases
def test_polling_without_having_joined_is_a_404(make_user: Any, make_performance: Any, client_for: Any) -> None:
    (seat, *_) = make_performance(queue=True)
    assert client_for(make_user()).get(QUEUE.format(seat.performance_id)).status_code == 404


@all_databases
def test_joining_a_performance_without_a_waiting_room_is_a_409(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    (seat, *_) = make_performance(queue=False)
    response = client_for(make_user()).post(QUEUE.format(seat.performance_id))
    assert response.status_code == 409
    assert "no waiting room" in response.json()["detail"]


@all_databases
def test_joining_an_unknown_performance_is_a_404(make_user: Any, client_for: Any) -> None:
    assert client_for(make_user()).post(QUEUE.format(987_654_321)).status_code == 404


@all_databases
@override_settings(QUEUE_ACTIVE_USERS=1)
def test_booking_a_queued_performance_without_admission_is_a_403(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given a queued performance whose one place is taken, a user waiting and a user who never joined
    seats = make_performance(queue=True)
    performance_id = seats[0].performance_id
    admitted, waiting, outsider = (client_for(make_user()) for _ in range(3))
    for client in (admitted, waiting):
        client.post(QUEUE.format(performance_id))

    # when the waiting user and the outsider book
    answers = [c.post("/api/reservations/", {"seat_id": seats[0].id}, format="json") for c in (waiting, outsider)]

    # then both are 403 saying so, and the seat is free
    assert [a.status_code for a in answers] == [403, 403]
    assert all("waiting room" in a.json()["detail"] for a in answers)
    assert Seat.objects.using("concerts").get(pk=seats[0].pk).status == "AVAILABLE"
    # while the admitted user books as usual
    assert admitted.post("/api/reservations/", {"seat_id": seats[0].id}, format="json").status_code == 202


@all_databases
@override_settings(QUEUE_ADMISSION_SECONDS=1)
def test_an_expired_admission_is_403_again(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given an admitted user who booked one seat
    seats = make_performance(queue=True)
    client = client_for(make_user())
    assert client.post(QUEUE.format(seats[0].performance_id)).json()["admitted"]
    assert client.post("/api/reservations/", {"seat_id": seats[0].id}, format="json").status_code == 202

    # when the admission has run out
    time.sleep(1.1)

    # then another booking is 403 and the user is out of the room
    response = client.post("/api/reservations/", {"seat_id": seats[1].id}, format="json")
    assert response.status_code == 403, response.content
    assert client.get(QUEUE.format(seats[0].performance_id)).status_code == 404


@all_databases
def test_redis_down_fails_closed_with_a_503_and_retry_after(
    make_user: Any, make_performance: Any, client_for: Any, redis_down: None
) -> None:
    # given Redis unreachable, a queued and an unqueued performance
    (queued, *_) = make_performance(queue=True)
    (plain, *_) = make_performance(queue=False)
    client = client_for(make_user())

    # when a user joins, polls and books the queued one
    answers = [
        client.post(QUEUE.format(queued.performance_id)),
        client.get(QUEUE.format(queued.performance_id)),
        client.post("/api/reservations/", {"seat_id": queued.id}, format="json"),
    ]

    # then each is 503 with Retry-After, and the seat is not held
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert all(a.headers.get("Retry-After") for a in answers)
    assert Seat.objects.using("concerts").get(pk=queued.pk).status == "AVAILABLE"
    # while a performance without a waiting room books as usual
    assert client.post("/api/reservations/", {"seat_id": plain.id}, format="json").status_code == 202


@saga
@override_settings(QUEUE_ACTIVE_USERS=1)
def test_a_confirmed_booking_hands_the_place_to_the_next_in_line(
    make_user: Any, make_performance: Any, fund: Any, client_for: Any
) -> None:
    # given a queued performance of one place: a user admitted and booked (able to pay, should workers
    # of the session relay the booking), another waiting
    seats = make_performance(queue=True)
    performance_id = seats[0].performance_id
    first, second = make_user(), make_user()
    fund(first.id, 1_000_000)
    first_client, second_client = client_for(first), client_for(second)
    first_client.post(QUEUE.format(performance_id))
    assert second_client.post(QUEUE.format(performance_id)).json()["position"] == 1
    reservation_id = first_client.post("/api/reservations/", {"seat_id": seats[0].id}, format="json").json()["id"]

    # when the booking is confirmed (its payment went through)
    reservation_confirm(reservation_id=reservation_id, payment_id=1)

    # then the place has passed to the second user (at once; waiting only in case workers of the
    # session confirmed it first and are just telling the waiting room)
    wait_for(lambda: second_client.get(QUEUE.format(performance_id)).json()["admitted"], timeout=5)
    assert first_client.get(QUEUE.format(performance_id)).status_code == 404


# --- Metrics ---------------------------------------------------------------------------------------


def admissions_counted(performance_id: int) -> float:
    return float(metrics.WAITING_ROOM_ADMISSIONS.labels(str(performance_id))._value.get())


@override_settings(QUEUE_ACTIVE_USERS=3)
def test_every_admission_is_counted_once_whoever_the_script_ran_for(room: int) -> None:
    # given eight users joining a waiting room of three places
    join_all(room, range(1, 9))
    # then three admissions are counted, however many polls follow
    positions(room, range(1, 9))
    assert admissions_counted(room) == 3

    # when two bookings are confirmed (the places go on during those users' own calls)
    queue_saga_finished(performance_id=room, user_id=1, confirmed=True)
    queue_saga_finished(performance_id=room, user_id=2, confirmed=True)

    # then the two users admitted in their place are counted too
    assert admissions_counted(room) == 5


@all_databases
@override_settings(QUEUE_ACTIVE_USERS=2)
def test_the_length_gauge_counts_the_users_waiting_per_queued_performance(make_performance: Any) -> None:
    # given a queued performance with two admitted and five waiting, and three early birds of a later opening
    (open_now, *_) = make_performance(queue=True)
    (later, *_) = make_performance(queue=True)
    join_all(open_now.performance_id, range(1, 8))
    opens_at = timezone.now() + timedelta(hours=1)
    for user in range(1, 4):
        queue_join(performance_id=later.performance_id, user_id=user, opens_at=opens_at)

    # when /metrics reads its gauges
    lengths = {s.labels["performance"]: s.value for s in gauges.read_sources() if s.name == gauges.WAITING_ROOM_LENGTH}

    # then each performance shows those who wait (the line and the pre-queue), not the admitted
    assert lengths[str(open_now.performance_id)] == 5
    assert lengths[str(later.performance_id)] == 3


@all_databases
def test_the_length_gauge_is_empty_while_redis_is_down(make_performance: Any, redis_down: None) -> None:
    # given a queued performance and Redis unreachable
    make_performance(queue=True)

    # when /metrics reads its gauges, then the waiting room reports nothing and the others still answer
    samples = list(gauges.read_sources())
    assert not [s for s in samples if s.name == gauges.WAITING_ROOM_LENGTH]
    assert [s for s in samples if s.name == "ticketing_saga_oldest_pending_age_seconds"]
