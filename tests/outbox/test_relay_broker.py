"""The relay against a broker that is away, slow, or has no queue for a message (real RabbitMQ, via a proxy)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from kombu import Connection

from tests.conftest import Workers, saga
from tests.proxy import Proxy
from tests.saga.conftest import wait_for
from ticketing.outbox.broker import ConfirmingPublisher
from ticketing.outbox.models import OutboxMessage, OutboxState
from ticketing.outbox.publish import publish_unchecked
from ticketing.outbox.relay import DeferredMarks, broker_pause, marks_flush, relay_pending

pytestmark = [saga]


def rows(using: str, ids: list[int]) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.using(using).filter(pk__in=ids))


def fresh_publisher() -> None:
    """Forget this thread's broker connection (and pause), so the next publish connects anew."""
    publisher = getattr(ConfirmingPublisher._local, "publisher", None)
    if publisher is not None:
        publisher.close()
    broker_pause.broker_answered()


@pytest.fixture
def probe_queue(workers: Workers) -> Iterator[str]:
    """A queue of the test's own that the event ``probe`` is routed to; nobody consumes it, no other relay runs."""
    queue = f"probe_{uuid.uuid4().hex[:8]}"
    with workers.paused("relay", "beat"), override_settings(OUTBOX_EVENT_ROUTES={"probe": [queue]}):
        yield queue
    with Connection(current_app.conf.broker_url) as connection:
        connection.default_channel.queue_delete(queue)
    fresh_publisher()


def queue_depth(queue: str) -> int:
    with Connection(current_app.conf.broker_url) as connection:
        return int(connection.default_channel.queue_declare(queue, passive=True).message_count)


def probe_row() -> OutboxMessage:
    with transaction.atomic(using="concerts"):
        return publish_unchecked("probe", {"n": 1}, using="concerts", aggregate_id=uuid.uuid4().hex[:12])


@pytest.fixture
def broker_through_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    """This process publishes through a proxy in front of RabbitMQ (Celery reads the URL from the environment)."""
    proxy = Proxy.for_url(current_app.conf.broker_url)
    monkeypatch.setenv("CELERY_BROKER_URL", proxy.url(current_app.conf.broker_url))
    fresh_publisher()
    yield proxy
    monkeypatch.undo()
    fresh_publisher()
    proxy.close()


def test_an_unreachable_broker_pauses_the_relay_without_spending_attempts(
    probe_queue: str, broker_through_proxy: Proxy
) -> None:
    # given a pending row and a broker nobody can reach
    row = probe_row()
    broker_through_proxy.cut()

    # when the relay tries to publish, and at once tries again
    assert relay_pending(using="concerts") == 0
    (after_failure,) = rows("concerts", [row.pk])
    assert relay_pending(using="concerts") == 0
    (after_retry,) = rows("concerts", [row.pk])

    # then the row was given back due, its attempts untouched, and the paused relay did not claim it again
    assert (after_failure.state, after_failure.attempts) == (OutboxState.PENDING, 0)
    assert after_failure.next_attempt_at <= timezone.now()
    assert "broker unavailable" in after_failure.last_error
    assert after_retry.next_attempt_at == after_failure.next_attempt_at

    # and when the broker is back and the pause is over, the row goes out
    broker_through_proxy.restore()
    wait_for(lambda: not broker_pause.active(), timeout=10, what="the pause to end")
    assert relay_pending(using="concerts") == 1
    assert queue_depth(probe_queue) == 1


def test_a_message_no_queue_would_receive_is_not_marked_sent(probe_queue: str) -> None:
    # given a relay that published to the probe queue once, and then the queue was deleted under it
    first = probe_row()
    assert relay_pending(using="concerts") == 1
    with Connection(current_app.conf.broker_url) as connection:
        connection.default_channel.queue_delete(probe_queue)

    # when the next row is published (the broker returns it: no queue is bound)
    second = probe_row()
    relay_pending(using="concerts")

    # then it is not sent: it counts as a failed attempt of its own, with the reason
    (returned,) = rows("concerts", [second.pk])
    assert (returned.state, returned.attempts) == (OutboxState.PENDING, 1)
    assert "returned" in returned.last_error
    assert rows("concerts", [first.pk])[0].state == OutboxState.SENT

    # and once due again it is published to the queue, declared anew
    OutboxMessage.objects.using("concerts").filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert relay_pending(using="concerts") == 1
    assert queue_depth(probe_queue) == 1


def test_deferred_marks_go_out_with_the_next_claim_and_hold_back_the_later_rows_of_their_saga(
    probe_queue: str,
) -> None:
    # given a drain that published a row and deferred its mark
    marks = DeferredMarks()
    first = probe_row()
    assert relay_pending(using="concerts", marks=marks) == 1
    (published,) = rows("concerts", [first.pk])
    assert (published.state, marks.ids) == (OutboxState.PENDING, [first.pk])

    # when a later row of the same saga and a row of another saga commit, and the next drain claims
    with transaction.atomic(using="concerts"):
        same_saga = publish_unchecked(
            "probe", {"n": 2}, using="concerts", aggregate_id=1, correlation_id=first.correlation_id
        )
    other = probe_row()
    assert relay_pending(using="concerts", marks=marks) == 1

    # then its one statement marked the first row sent and claimed the other saga's row, not the later one
    assert [r.state for r in rows("concerts", [first.pk, other.pk, same_saga.pk])] == [
        OutboxState.SENT,
        OutboxState.PENDING,
        OutboxState.PENDING,
    ]
    assert marks.ids == [other.pk]
    assert queue_depth(probe_queue) == 2

    # and when no claim comes, the marks go alone; the later row of the first saga goes with the next drain
    assert marks_flush(using="concerts", marks=marks) == 1
    assert relay_pending(using="concerts") == 1
    assert {r.state for r in rows("concerts", [first.pk, other.pk, same_saga.pk])} == {OutboxState.SENT}


def test_a_drain_reads_the_notifications_before_each_claim(probe_queue: str) -> None:
    # given two committed rows
    probe_row(), probe_row()
    calls: list[int] = []

    # when a drain runs with a hook before its claims
    sent = relay_pending(using="concerts", batch_size=1, before_claim=lambda: calls.append(1))

    # then the hook ran before every claim (two that found a row, one that found none)
    assert (sent, len(calls)) == (2, 3)


def relay_loop(pool: Workers, name: str) -> Any:
    return pool.spawn(name, [sys.executable, "-m", "tests.chaos.relay_process", "loop", "concerts"])


def user_registered_rows(count: int) -> list[int]:
    """Events whose consumer only opens a wallet for a user nobody has: harmless to deliver twice."""
    with transaction.atomic(using="concerts"):
        events = [
            publish_unchecked("user-registered", {"user_id": 10**12 + n}, using="concerts", aggregate_id=n)
            for n in range(count)
        ]
        return [event.pk for event in events]


@override_settings(OUTBOX_FAST_PATH=False)
def test_a_relay_whose_lease_ran_out_on_a_slow_broker_does_not_undo_another_relays_work(
    workers: Workers, tmp_path: Path
) -> None:
    url = workers.env["CELERY_BROKER_URL"]
    proxy = Proxy.for_url(url)
    slow = Workers(tmp_path)
    slow.env["CELERY_BROKER_URL"] = proxy.url(url)
    with workers.paused("relay", "beat"):
        # given relay A, connected to the broker through a proxy, which then turns slow
        relay_a = relay_loop(slow, "relay-a")
        relay_b = None
        try:
            (warm_up,) = user_registered_rows(1)
            wait_for(lambda: rows("concerts", [warm_up])[0].state == OutboxState.SENT, what="relay A to connect")
            with proxy.slow(12):
                ids = user_registered_rows(5)
                wait_for(
                    lambda: all(r.next_attempt_at > timezone.now() for r in rows("concerts", ids)),
                    what="relay A to claim the rows",
                )

                # when relay B (a fast broker) sends the rows while A is still waiting for its confirms
                relay_b = relay_loop(workers, "relay-b")
                wait_for(
                    lambda: all(r.state == OutboxState.SENT for r in rows("concerts", ids)),
                    what="relay B to send the rows",
                )
                wait_for(lambda: "rows failed" in slow.log("relay-a"), timeout=40, what="relay A to give up")
                time.sleep(1)

            # then A's failure changed nothing B did: every row is sent, no attempt spent
            assert [(r.state, r.attempts) for r in rows("concerts", ids)] == [(OutboxState.SENT, 0)] * 5
        finally:
            for relay in (relay_a, relay_b):
                if relay is not None:
                    relay.kill()
                    relay.wait()
            proxy.close()
