"""A consumer never acknowledges a failure without a trace: a dead letter, a retry, or the message kept."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.db import transaction

from tests.conftest import Workers, saga
from tests.proxy import Proxy
from tests.saga.conftest import wait_for
from ticketing.events.catalogue import UserRegistered
from ticketing.outbox.models import DeadLetter, InboxMessage, OutboxMessage, OutboxState
from ticketing.outbox.publish import publish

pytestmark = [saga]


def test_a_handler_that_raises_something_unexpected_leaves_a_dead_letter_with_the_error(workers: Any) -> None:
    # given a user-registered event whose user id no bigint column can hold (the wallet insert raises DataError)
    with transaction.atomic(using="default"):
        event = publish(UserRegistered(user_id=2**70), using="default", aggregate_id=1)

    # when the relay sends it and the payments worker handles it
    wait_for(
        lambda: OutboxMessage.objects.using("default").get(pk=event.pk).state == OutboxState.SENT,
        what="the event to be sent",
    )

    # then it is set aside as a dead letter naming the error, and nothing of its effect committed
    letter = wait_for(
        lambda: DeadLetter.objects.using("payments").filter(event_id=event.event_id).first(),
        what="a dead letter for the event",
    )
    assert "DataError" in letter.error
    assert letter.envelope["payload"] == {"user_id": 2**70}
    assert not InboxMessage.objects.using("payments").filter(event_id=event.event_id).exists()


@pytest.fixture
def payments_database_proxy(workers: Workers, tmp_path: Path) -> Iterator[tuple[Workers, Proxy]]:
    """The payments worker alone, talking to its database through a proxy the test can cut."""
    url = workers.env["PAYMENTS_DATABASE_URL"]
    proxy = Proxy.for_url(url)
    with workers.paused("payments"):
        own = Workers(tmp_path)
        own.env["PAYMENTS_DATABASE_URL"] = proxy.url(url)
        own.start("payments")
        try:
            yield own, proxy
        finally:
            proxy.restore()
            own.stop_all()
            proxy.close()


def test_a_failure_that_cannot_be_recorded_keeps_the_message_on_the_broker(
    payments_database_proxy: tuple[Workers, Proxy],
) -> None:
    own, proxy = payments_database_proxy
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event": "payment-refund",  # an event without a give-up handler: it ends as a dead letter
        "correlation_id": "saga-db-down",
        "payload": {"reservation_id": 987_654, "reason": "test"},
    }
    # given the payments database is unreachable from the worker
    proxy.cut()

    # when an event arrives, its retries run out, and neither its effect nor a dead letter can be written
    current_app.send_task("payments.handle_event", args=[envelope], queue="payments")
    wait_for(lambda: own.log("payments").count("retry: Retry in") >= 3, what="the retries to run out")
    time.sleep(3)  # the last attempt fails too
    proxy.restore()

    # then the message was not dropped: once the database is back, the event is consumed
    wait_for(
        lambda: InboxMessage.objects.using("payments").filter(event_id=envelope["event_id"]).exists(),
        timeout=30,
        what="the event to be consumed once the database is back",
    )
