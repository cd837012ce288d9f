"""The waiting room on on-sale day: the fast path, pacing, presence, the join throttle, the store."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from tests.concerts.conftest import Front, OwnRedis
from tests.conftest import access_token, all_databases, saga
from ticketing.concerts import waiting_room
from ticketing.concerts.waiting_room import queue_advance, queue_join, queue_status
from ticketing.front import queue as front_queue
from ticketing.observability import metrics

QUEUE = "/api/performances/{}/queue/"


def bearer(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(user)}"}


def places(performance_id: int, users: range) -> list[tuple[int | None, bool] | None]:
    return [
        (s.position, s.admitted) if (s := queue_status(performance_id=performance_id, user_id=u)) else None
        for u in users
    ]


# --- The fast path -----------------------------------------------------------------------------------


@saga
@override_settings(QUEUE_ACTIVE_USERS=2)
def test_a_poll_with_a_ticket_costs_no_redis_round_trip_and_no_database_query(
    front: Front, make_user: Any, make_performance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given eight users who joined a queued performance through the web front with their JWTs
    performance_id = make_performance(queue=True)[0].performance_id
    users = [make_user() for _ in range(8)]
    joined = [front.request("POST", QUEUE.format(performance_id), bearer(u)) for u in users]
    assert [a.status for a in joined] == [200] * 8
    assert [a.json()["position"] for a in joined] == [0, 0, 1, 2, 3, 4, 5, 6]

    # when the six waiting poll five times each with their tickets (and no token at all)
    round_trips: list[str] = []
    for name in ("aqueue_status", "aqueue_state", "aqueue_join"):
        original = getattr(waiting_room, name)

        async def counted(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            round_trips.append(_name)
            return await _original(*args, **kwargs)

        monkeypatch.setattr(waiting_room, name, counted)
    monkeypatch.setattr(front_queue.selectors, "performance_get", lambda **_: pytest.fail("a database query"))
    started, fast_before = time.monotonic(), fast_answers("ticket")
    polls = [
        front.request("GET", QUEUE.format(performance_id), {"X-Queue-Ticket": answer.json()["ticket"]})
        for _ in range(5)
        for answer in joined[2:]
    ]

    # then every poll answers the place, and all 30 shared one read of the room's state (two, had a
    # second passed) and made no Redis call of their own
    assert [p.json()["position"] for p in polls] == [1, 2, 3, 4, 5, 6] * 5
    assert all(p.json()["poll_after_seconds"] >= 0.9 for p in polls)
    assert round_trips.count("aqueue_state") <= 1 + int(time.monotonic() - started)
    assert "aqueue_status" not in round_trips
    # and the metrics count them so
    assert fast_answers("ticket") - fast_before == 30


@saga
@override_settings(QUEUE_ACTIVE_USERS=1)
def test_a_poll_with_a_ticket_does_not_verify_the_jwt_sent_with_it(
    front: Front, make_user: Any, make_performance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a user waiting behind another, with the ticket their join returned
    performance_id = make_performance(queue=True)[0].performance_id
    front.request("POST", QUEUE.format(performance_id), bearer(make_user()))
    user = make_user()
    joined = front.request("POST", QUEUE.format(performance_id), bearer(user))

    # when they poll with the ticket and their JWT, as the shop's API clients do
    monkeypatch.setattr(front_queue, "bearer_user", lambda headers: pytest.fail("the JWT was verified"))
    headers = {**bearer(user), "X-Queue-Ticket": joined.json()["ticket"]}
    answer = front.request("GET", QUEUE.format(performance_id), headers)

    # then the ticket alone answers their place
    assert answer.status == 200
    assert answer.json()["position"] == joined.json()["position"] == 1


def fast_answers(cost: str) -> float:
    return float(metrics.WAITING_ROOM_FAST_ANSWERS.labels(cost)._value.get())


@saga
def test_the_front_serves_every_other_path_through_django_on_one_origin(
    front: Front, make_user: Any, make_performance: Any
) -> None:
    # given a queued performance
    performance_id = make_performance(queue=True)[0].performance_id

    # when the same application is asked for a page, the API and a queue call without credentials
    page = front.request("GET", "/healthz")
    concerts = front.request("GET", "/api/concerts/")
    anonymous = front.request("GET", QUEUE.format(performance_id))

    # then Django answers them: the page and the API as usual, the anonymous poll with DRF's 401/403
    assert page.status == 200
    assert concerts.status == 200 and isinstance(concerts.json(), list)
    assert anonymous.status in (401, 403)


@saga
def test_a_join_through_the_front_refuses_an_unknown_or_unqueued_performance(
    front: Front, make_user: Any, make_performance: Any
) -> None:
    plain = make_performance(queue=False)[0].performance_id
    user = make_user()
    assert front.request("POST", QUEUE.format(987_654_321), bearer(user)).status == 404
    unqueued = front.request("POST", QUEUE.format(plain), bearer(user))
    assert unqueued.status == 409
    assert unqueued.json()["detail"] == waiting_room.NO_WAITING_ROOM


def test_the_front_answers_503_with_retry_after_when_redis_is_down(front: Front, room: int) -> None:
    # given Redis unreachable and a ticket the user got before
    status = waiting_room.QueueStatus(5, False, None, turn=9, epoch="e")
    ticket = waiting_room.queue_ticket_issue(performance_id=room, user_id=1, status=status)
    with override_settings(QUEUE_REDIS_URL="redis://127.0.0.1:1/0"):
        front_queue.states.entries.clear()
        waiting_room._aclient.cache_clear()
        waiting_room._ascript.cache_clear()
        # when the user polls
        answer = front.request("GET", QUEUE.format(room), {"X-Queue-Ticket": ticket})
    # then 503 says when to retry
    assert answer.status == 503
    assert int(answer.headers["retry-after"]) > 0


# --- Pacing ------------------------------------------------------------------------------------------


@override_settings(QUEUE_ACTIVE_USERS=10, QUEUE_POLL_MAX_SECONDS=30)
def test_the_server_tells_each_place_when_to_ask_again_later_the_further_back(room: int) -> None:
    # given 400 users in line before a room of ten places
    for user in range(1, 401):
        queue_join(performance_id=room, user_id=user, opens_at=None)

    # when they poll
    statuses = [queue_status(performance_id=room, user_id=u) for u in (1, 11, 21, 51, 101, 201, 400)]
    pace = [s.poll_after_seconds for s in statuses if s is not None]

    # then the admitted are told the longest pace, and those waiting longer the further back they are
    assert statuses[0] is not None and statuses[0].admitted and pace[0] == 30
    assert pace[1] <= 1.1  # the head of the line
    assert pace[1] < pace[3] < pace[4] < pace[5]
    assert 27 <= pace[6] <= 33  # far back: about the longest
    # and 390 waiting people ask about this often in all (a few hundred polls a second for 10,000)
    waiting = [queue_status(performance_id=room, user_id=u) for u in range(11, 401)]
    per_second = sum(1 / s.poll_after_seconds for s in waiting if s is not None)
    assert per_second < 60


@all_databases
@override_settings(QUEUE_JOIN_RATE_PER_USER=3, QUEUE_JOIN_RATE_PER_ADDRESS=5)
def test_joining_is_throttled_per_user_and_per_address_with_retry_after(
    make_user: Any, make_performance: Any, client_for: Any
) -> None:
    # given a queued performance and a user joining again and again
    performance_id = make_performance(queue=True)[0].performance_id
    client = client_for(make_user())
    answers = [client.post(QUEUE.format(performance_id)) for _ in range(4)]

    # then the fourth join is 429 with Retry-After (the place is kept)
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 0 < int(answers[3].headers["Retry-After"]) <= 60
    assert client.get(QUEUE.format(performance_id)).status_code == 200

    # and from one address, past five joins by anyone, others get 429 too
    others = [client_for(make_user()) for _ in range(3)]
    for other in others:
        other.defaults["REMOTE_ADDR"] = client.defaults["REMOTE_ADDR"]
    assert [o.post(QUEUE.format(performance_id)).status_code for o in others] == [200, 200, 429]
    # while someone from another address joins as usual
    assert client_for(make_user()).post(QUEUE.format(performance_id)).status_code == 200


# --- Presence ----------------------------------------------------------------------------------------


@override_settings(QUEUE_ACTIVE_USERS=2, QUEUE_FIRST_WINDOW_SECONDS=1, QUEUE_ADMISSION_SECONDS=300)
def test_an_unused_admission_lapses_after_the_first_window_and_activity_keeps_it(room: int) -> None:
    # given two admitted users and one waiting; the second comes back to the seat map (joins again)
    for user in (1, 2, 3):
        queue_join(performance_id=room, user_id=user, opens_at=None)
    present = queue_join(performance_id=room, user_id=2, opens_at=None)
    assert present.admitted_until is not None
    assert present.admitted_until > timezone.now() + timedelta(seconds=290)

    # when the first window is over and the timer ticks
    time.sleep(1.2)
    queue_advance(performance_id=room, opens_at=None)

    # then the one who did nothing is out, the present one still in, and the place went on
    assert places(room, range(1, 4)) == [None, (0, True), (0, True)]


# --- The store ---------------------------------------------------------------------------------------


@override_settings(QUEUE_ACTIVE_USERS=5)
def test_a_redis_restart_with_aof_keeps_every_place(own_redis: OwnRedis, room: int) -> None:
    # given 40 users in a room (5 admitted, 35 waiting) and 10 in another room's pre-queue
    for user in range(1, 41):
        queue_join(performance_id=room, user_id=user, opens_at=None)
    later = timezone.now() + timedelta(hours=1)
    for user in range(1, 11):
        queue_join(performance_id=room + 1, user_id=user, opens_at=later)
    before = places(room, range(1, 41)), places(room + 1, range(1, 11))

    # when Redis is killed (no shutdown save) and started again on the same files
    own_redis.kill()
    own_redis.start()
    waiting_room._client.cache_clear()
    waiting_room._script.cache_clear()

    # then every place is as it was
    assert (places(room, range(1, 41)), places(room + 1, range(1, 11))) == before
    assert [p for p in before[0] if p and p[1]] == [(0, True)] * 5


@override_settings(QUEUE_ACTIVE_USERS=100, QUEUE_OPENING_BATCH=1000, QUEUE_JOIN_RATE_PER_USER=10)
def test_a_pre_queue_of_100000_opens_in_batches_of_a_few_milliseconds_and_latecomers_stay_behind(
    own_redis: OwnRedis, room: int
) -> None:
    # given 100,000 users in the pre-queue of a sale (joined in pipelined calls)
    opens_at = timezone.now() + timedelta(hours=1)
    client = waiting_room._client()
    script, keys_of = waiting_room._script(), waiting_room._keys
    for start in range(1, 100_001, 5000):
        pipe = client.pipeline(transaction=False)
        for user in range(start, start + 5000):
            args = waiting_room._args("join", user, int(opens_at.timestamp() * 1000))
            script(keys=keys_of(room, user), args=args, client=pipe)
        pipe.execute()
    assert client.zcard(keys_of(room)[0]) == 100_000

    # when the sale opens (the opening brought forward to now), a latecomer joins, and the timer moves the pre-queue
    opens_at = timezone.now()
    # (Redis's slow log, from 1 ms: logging every call would log each command inside the script too)
    client.config_set("slowlog-log-slower-than", 1000)
    client.config_set("slowlog-max-len", 10_000)
    client.slowlog_reset()
    latecomer = queue_join(performance_id=room, user_id=100_001, opens_at=opens_at)
    ticks = 1
    while queue_advance(performance_id=room, opens_at=opens_at):
        ticks += 1

    # then it took a hundred calls of at most a thousand moves each, each holding Redis a few
    # milliseconds on a quiet machine (the bound is loose: a busy machine stretches wall time, while
    # moving all 100,000 at once holds Redis for hundreds of milliseconds anywhere)
    assert ticks == 100
    durations_us = sorted(e["duration"] for e in client.slowlog_get(10_000) if b"EVALSHA" in e["command"])
    assert not durations_us or durations_us[-1] < 100_000, durations_us[-5:]
    # and the latecomer, who joined while the pre-queue was still on its way, waits behind all of it
    assert latecomer.position == 100_001  # when joining: everyone of the pre-queue ahead
    after = queue_status(performance_id=room, user_id=100_001)
    assert after is not None and after.position == 100_000 - 100 + 1  # 100 of them admitted since
    assert client.zcard(keys_of(room)[1]) == 100_000 - 100 + 1
    # and the pre-queue's order has nothing to do with the order of joining
    pipe = client.pipeline(transaction=False)
    for user in range(1, 100_001, 10):
        pipe.zscore(keys_of(room)[1], user)
    turns = [t if t is not None else 0.0 for t in pipe.execute()]  # the admitted 100 left the line
    joined = [float(u) for u in range(1, 100_001, 10)]
    assert abs(statistics.correlation(joined, turns)) < 0.05


@saga
def test_losing_redis_keys_never_opens_a_sale_early(make_user: Any, make_performance: Any, client_for: Any) -> None:
    # given a queued performance opening in an hour, with three users in its pre-queue
    performance_id = make_performance(queue=True, sales_open_in=timedelta(hours=1))[0].performance_id
    clients = [client_for(make_user()) for _ in range(3)]
    for client in clients:
        assert client.post(QUEUE.format(performance_id)).json()["position"] is None

    # when Redis loses the room's record of the opening time, and the timer ticks and one more joins
    redis.Redis.from_url(waiting_room.settings.QUEUE_REDIS_URL).delete(waiting_room._keys(performance_id)[4])
    front_queue._queued["until"] = 0.0
    front_queue.db_thread.submit(front_queue.advance_all).result(timeout=30)  # as the front's timer runs it
    front_queue.db_thread.submit(connections.close_all).result(timeout=30)
    late = client_for(make_user()).post(QUEUE.format(performance_id))

    # then the opening time still comes from the database: nobody is admitted, the latecomer is in the pre-queue too
    assert late.json()["position"] is None and late.json()["admitted"] is False
    assert all(c.get(QUEUE.format(performance_id)).json()["position"] is None for c in clients)
