"""The batch consumer: the events of one message applied in one transaction, a failing one left out alone."""

from __future__ import annotations

import uuid
from typing import Any

from celery import current_app
from django.test import override_settings

from tests.conftest import saga
from tests.saga.conftest import wait_for
from ticketing.outbox.consume import consume_batch
from ticketing.outbox.models import DeadLetter, InboxMessage, OutboxMessage
from ticketing.outbox.relay import outgoing_of
from ticketing.payments.handlers import consumer as payments_consumer
from ticketing.payments.models import Wallet

pytestmark = [saga]


def user_registered(user_id: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event": "user-registered",
        "correlation_id": f"batch-{user_id}",
        "payload": {"user_id": user_id},
    }


def test_a_batch_holding_one_poisoned_event_commits_the_rest(workers: Any) -> None:
    # given a batch of three events, the second of which no bigint column can hold (its insert raises)
    first, poisoned, third = user_registered(7_000_001), user_registered(2**70), user_registered(7_000_003)

    # when the payments worker applies it as one message
    current_app.send_task("payments.handle_events", args=[[first, poisoned, third]], queue="payments")

    # then the poisoned event is a dead letter naming its error, with nothing of it committed
    letter = wait_for(
        lambda: DeadLetter.objects.using("payments").filter(event_id=poisoned["event_id"]).first(),
        what="a dead letter for the poisoned event",
    )
    assert "DataError" in letter.error
    assert not InboxMessage.objects.using("payments").filter(event_id=poisoned["event_id"]).exists()
    # and the others committed, each with its inbox row
    assert set(
        Wallet.objects.using("payments").filter(user_id__in=[7_000_001, 7_000_003]).values_list("user_id", flat=True)
    ) == {7_000_001, 7_000_003}
    inbox = InboxMessage.objects.using("payments").filter(event_id__in=[first["event_id"], third["event_id"]])
    assert inbox.count() == 2


def test_a_batch_applied_again_changes_nothing_and_applies_each_event_once() -> None:
    # given a batch with one event twice, applied once
    event, other = user_registered(7_000_011), user_registered(7_000_012)
    assert consume_batch([event, other, event], using="payments", handlers=payments_consumer.handlers) == []

    # when the same batch comes again (a redelivery)
    again = consume_batch([event, other], using="payments", handlers=payments_consumer.handlers)

    # then nothing failed, and each event has one inbox row and one effect
    assert again == []
    assert (
        InboxMessage.objects.using("payments").filter(event_id__in=[event["event_id"], other["event_id"]]).count() == 2
    )
    assert Wallet.objects.using("payments").filter(user_id__in=[7_000_011, 7_000_012]).count() == 2


def test_an_event_of_a_batch_without_a_handler_is_returned_as_failed_and_the_rest_apply() -> None:
    # given a batch holding an event this service does not consume
    stray = {**user_registered(7_000_021), "event": "payment-success"}
    event = user_registered(7_000_022)

    # when it is applied
    failed = consume_batch([stray, event], using="payments", handlers=payments_consumer.handlers)

    # then the stray one alone failed (as malformed: a dead letter), and the other applied
    assert [(envelope["event_id"], type(error).__name__) for envelope, error in failed] == [
        (stray["event_id"], "MalformedEvent")
    ]
    assert Wallet.objects.using("payments").filter(user_id=7_000_022).exists()


@override_settings(CONSUMER_BATCH_SIZE=3)
def test_the_relay_sends_a_drain_in_messages_of_up_to_the_batch_size() -> None:
    # given seven claimed rows of one queue
    rows = [
        OutboxMessage(id=n, event="user-registered", aggregate_id="1", correlation_id=str(n), payload={"user_id": n})
        for n in range(7)
    ]

    # when they are turned into messages
    outgoing = outgoing_of(rows)

    # then they go in order in batches of 3, 3 and a single message for the last
    assert [[row.id for row in carried] for carried, _ in outgoing] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [message.task()[0] for _, message in outgoing] == ["payments.handle_events"] * 2 + ["payments.handle_event"]


def test_the_events_a_batch_publishes_carry_each_their_own_saga(fund: Any) -> None:
    # given two users with money and a batch of two payment requests, one per saga
    fund(7_000_031, 100_000)
    fund(7_000_032, 100_000)
    requests = [
        {
            "event_id": str(uuid.uuid4()),
            "event": "concert-reserve",
            "correlation_id": f"batch-saga-{n}",
            "payload": {"reservation_id": 8_000_000 + n, "user_id": 7_000_030 + n, "amount": 50_000},
        }
        for n in (1, 2)
    ]

    # when the batch is applied
    assert consume_batch(requests, using="payments", handlers=payments_consumer.handlers) == []

    # then each charge announced its success under its own saga, caused by its own request
    published = OutboxMessage.objects.using("payments").filter(correlation_id__startswith="batch-saga-")
    assert sorted((row.event, row.correlation_id, str(row.causation_id)) for row in published) == [
        ("payment-success", f"batch-saga-{n}", requests[n - 1]["event_id"]) for n in (1, 2)
    ]
