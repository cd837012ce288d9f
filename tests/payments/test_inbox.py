"""The consumer's inbox: an event is applied once however often it arrives, and a malformed one is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import OperationalError

from tests.conftest import all_databases
from ticketing.outbox.consume import MalformedEvent, consume
from ticketing.outbox.models import InboxMessage

pytestmark = [all_databases]


def envelope(**overrides: Any) -> dict[str, Any]:
    message = {
        "event_id": str(uuid.uuid4()),
        "event": "ping",
        "schema_version": 1,
        "occurred_at": "2030-01-01T00:00:00+00:00",
        "aggregate_id": "1",
        "correlation_id": "saga-1",
        "causation_id": None,
        "payload": {"n": 1},
    }
    message.update(overrides)
    return message


def test_an_event_delivered_twice_is_handled_once() -> None:
    # given an event and a handler that counts its calls
    message = envelope()
    handled: list[dict[str, Any]] = []

    # when the same event is consumed twice
    first = consume(dict(message), using="payments", handlers={"ping": handled.append})
    second = consume(dict(message), using="payments", handlers={"ping": handled.append})

    # then the handler ran once: the first delivery says True, the repeat False
    assert (first, second) == (True, False)
    assert handled == [{"n": 1}]
    assert InboxMessage.objects.using("payments").filter(pk=message["event_id"]).count() == 1


def test_two_events_with_different_ids_are_both_handled() -> None:
    # given two distinct events with the same payload
    handled: list[dict[str, Any]] = []

    # when both are consumed
    outcomes = [consume(envelope(), using="payments", handlers={"ping": handled.append}) for _ in range(2)]

    # then both ran
    assert outcomes == [True, True]
    assert len(handled) == 2


def test_the_inbox_is_per_database() -> None:
    # given an event consumed by payments
    message = envelope()
    consume(dict(message), using="payments", handlers={"ping": lambda payload: None})

    # when concerts consumes the same event
    handled: list[dict[str, Any]] = []
    outcome = consume(dict(message), using="concerts", handlers={"ping": handled.append})

    # then concerts handles it too: each service keeps its own inbox
    assert outcome is True
    assert handled == [{"n": 1}]


def test_a_handler_that_fails_leaves_no_inbox_row_so_a_redelivery_is_handled() -> None:
    # given an event whose first handling fails with a transient error
    message = envelope()

    def fail(payload: dict[str, Any]) -> None:
        raise OperationalError("database went away")

    with pytest.raises(OperationalError):
        consume(dict(message), using="payments", handlers={"ping": fail})

    # when it is redelivered
    handled: list[dict[str, Any]] = []
    outcome = consume(dict(message), using="payments", handlers={"ping": handled.append})

    # then the redelivery is handled: the failed attempt recorded nothing
    assert outcome is True
    assert handled == [{"n": 1}]


@pytest.mark.parametrize(
    "message",
    [
        {k: v for k, v in envelope().items() if k != "event_id"},
        envelope(event_id="not-a-uuid"),
        {k: v for k, v in envelope().items() if k != "event"},
        {k: v for k, v in envelope().items() if k != "payload"},
        {k: v for k, v in envelope().items() if k != "correlation_id"},
        envelope(payload=[1, 2]),
        envelope(payload="n=1"),
        envelope(payload=None),
        envelope(event=["ping"]),
        envelope(event="no-such-event"),
        ["not", "an", "object"],
        "ping",
        None,
    ],
    ids=[
        "no-event-id",
        "bad-event-id",
        "no-event",
        "no-payload",
        "no-correlation-id",
        "payload-list",
        "payload-string",
        "payload-null",
        "event-list",
        "unknown-event",
        "list",
        "string",
        "null",
    ],
)
def test_a_malformed_envelope_is_refused_and_recorded_nowhere(message: Any) -> None:
    # given a message that can never be handled as it is
    handled: list[dict[str, Any]] = []

    # when it is consumed
    with pytest.raises(MalformedEvent):
        consume(message, using="payments", handlers={"ping": handled.append})

    # then it is refused as malformed, no handler ran and the inbox is untouched
    assert handled == []
    assert not InboxMessage.objects.using("payments").exists()


def test_a_payload_the_handler_cannot_read_is_malformed_and_not_recorded() -> None:
    # given an event whose payload lacks what the handler needs
    def needs_amount(payload: dict[str, Any]) -> None:
        int(payload["amount"])

    # when it is consumed
    with pytest.raises(MalformedEvent):
        consume(envelope(), using="payments", handlers={"ping": needs_amount})

    # then no inbox row was kept
    assert not InboxMessage.objects.using("payments").exists()
