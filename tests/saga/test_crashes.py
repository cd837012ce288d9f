"""The saga under duplicates and crashes: the inbox absorbs what at-least-once delivery repeats."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from celery import current_app
from django.db import connections, transaction
from django.test import override_settings
from kombu import Connection, Queue

from tests.conftest import saga
from ticketing.concerts.services import reservation_create
from ticketing.outbox.broker import publish_batch
from ticketing.outbox.models import InboxMessage, OutboxMessage, OutboxState
from ticketing.outbox.publish import publish_unchecked
from ticketing.outbox.relay import claim_due_rows, messages_of, relay_pending, replay
from ticketing.payments.models import Payment, Wallet, WalletEntry

from .conftest import Booking, RowLock, settled, wait_for

pytestmark = [saga]


def concert_reserve_row(reservation_id: int) -> OutboxMessage:
    return OutboxMessage.objects.using("concerts").get(event="concert-reserve", correlation_id=str(reservation_id))


def test_an_event_published_twice_has_one_effect(audited: None, workers: Any, confirmed_booking: Booking) -> None:
    # given a booking that was paid and confirmed
    row = concert_reserve_row(confirmed_booking.reservation_id)

    # when its concert-reserve event is published again by hand
    replay(using="concerts", ids=[row.id])
    relay_pending(using="concerts")

    # then payments sees it again but charges once
    wait_for(lambda: f"{row.event_id} already consumed" in workers.log("payments"), what="the duplicate")
    assert Payment.objects.using("payments").filter(reservation_id=confirmed_booking.reservation_id).count() == 1
    assert Wallet.objects.using("payments").get(user_id=confirmed_booking.user.id).balance == 60_000
    assert WalletEntry.objects.using("payments").filter(kind="CHARGE").count() == 1


def test_a_payments_worker_killed_in_the_middle_of_a_task_leaves_the_saga_to_finish(
    audited: None, workers: Any, stalled_payment: tuple[Booking, RowLock]
) -> None:
    # given a payments worker stuck inside its transaction (the test holds the wallet's row lock)
    booking, locker = stalled_payment

    # when the worker is killed with SIGKILL, the lock let go, and a new worker started
    workers.kill("payments")
    locker.release()
    workers.start("payments")

    # then RabbitMQ redelivers the unacknowledged message and the saga completes once
    assert settled(booking.reservation_id, timeout=30).status == "CONFIRMED"
    assert Wallet.objects.using("payments").get(user_id=booking.user.id).balance == 60_000


@override_settings(OUTBOX_FAST_PATH=False)
def test_a_relay_killed_between_publish_and_mark_sent_publishes_again_and_the_inbox_absorbs_it(
    audited: None, workers: Any, make_user: Any, make_seats: Any, fund: Any
) -> None:
    # given a booking whose outbox row a relay claimed and published, then died before marking it
    user = make_user()
    fund(user.id, 100_000)
    seats = iter(make_seats(count=5, price=10_000))
    claimed: list[OutboxMessage] = []
    with workers.paused("relay"):
        while not claimed:  # beat's relay may take the row first; then book another seat
            reservation = reservation_create(user_id=user.id, seat_id=next(seats).id)
            claimed = [r for r in claim_due_rows(using="concerts", limit=1) if r.aggregate_id == str(reservation.id)]
        assert publish_batch(messages_of(claimed[0])) == [None]

    # when the lease runs out, a relay publishes the row again
    wait_for(
        lambda: OutboxMessage.objects.using("concerts").get(pk=claimed[0].pk).state == OutboxState.SENT,
        what="the row to be republished",
    )

    # then the second copy is absorbed: one payment, one inbox row, a confirmed booking
    wait_for(lambda: f"{claimed[0].event_id} already consumed" in workers.log("payments"), what="the duplicate")
    assert settled(reservation.id).status == "CONFIRMED"
    assert Payment.objects.using("payments").filter(reservation_id=reservation.id).count() == 1
    assert InboxMessage.objects.using("payments").filter(event_id=claimed[0].event_id).count() == 1


@override_settings(OUTBOX_FAST_PATH=False)
def test_two_relays_over_one_table_publish_every_row_exactly_once(workers: Any) -> None:
    with workers.paused("beat", "relay"):
        # given 600 unsent rows in one outbox, in 300 sagas of two events each, and no other relay
        with transaction.atomic(using="payments"):
            for n in range(600):
                publish_unchecked(
                    "relay-test", {"n": n}, using="payments", aggregate_id=n, correlation_id=f"saga-{n % 300}"
                )
        queue = f"relay_test_{uuid.uuid4().hex[:8]}"

        # when two relays drain the table at the same time, in small batches
        with override_settings(OUTBOX_EVENT_ROUTES={"relay-test": [queue]}):
            declare(queue)
            run_in_threads([lambda: relay_pending(using="payments", max_batches=1000, batch_size=7)] * 2)

    # then every row was published exactly once, and every saga's events left in order
    messages = drain(queue)
    assert sorted(m["payload"]["n"] for m in messages) == list(range(600))
    for saga_id in {m["correlation_id"] for m in messages}:
        ns = [m["payload"]["n"] for m in messages if m["correlation_id"] == saga_id]
        assert ns == sorted(ns)
    assert not OutboxMessage.objects.using("payments").exclude(state=OutboxState.SENT).exists()


# --- helpers -------------------------------------------------------------------------------------------


def run_in_threads(calls: list[Any]) -> None:
    def call(fn: Any) -> None:
        try:
            fn()
        finally:
            for connection in connections.all():
                connection.close()

    threads = [threading.Thread(target=call, args=(fn,)) for fn in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def declare(queue: str) -> None:
    with Connection(current_app.conf.broker_url) as conn:
        conn.SimpleQueue(queue, queue_opts={"durable": True, "auto_delete": False}).close()


def drain(queue: str) -> list[dict[str, Any]]:
    """The envelopes waiting in ``queue``, in order (Celery task messages: the first argument is the
    envelope, or a batch of envelopes)."""
    envelopes = []
    with Connection(current_app.conf.broker_url) as conn:
        simple = conn.SimpleQueue(queue, queue_opts={"durable": True, "auto_delete": False})
        try:
            while True:
                message = simple.get(timeout=1)
                args, _kwargs, _embed = message.decode()
                envelopes += args[0] if isinstance(args[0], list) else [args[0]]
                message.ack()
        except simple.Empty:
            pass
        finally:
            simple.close()
        Queue(queue, channel=conn.default_channel).delete()
    return envelopes
