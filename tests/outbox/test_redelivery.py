"""A message that keeps coming back (its worker dies every time) is set aside after a bound."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Reject
from django.test import override_settings

from tests.conftest import all_databases
from ticketing.outbox.consume import run_consumer
from ticketing.outbox.models import DeadLetter, InboxMessage, Redelivery

pytestmark = [all_databases]


def delivery(*, redelivered: bool) -> Any:
    return SimpleNamespace(request=SimpleNamespace(delivery_info={"redelivered": redelivered}, retries=0))


def envelope() -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event": "ping", "correlation_id": "saga-1", "payload": {}}


@override_settings(CONSUMER_MAX_REDELIVERIES=3)
def test_a_redelivered_message_is_handled_until_it_came_back_too_often() -> None:
    # given a message whose worker died on it before
    message = envelope()
    handled: list[dict[str, Any]] = []
    handlers = {"ping": handled.append}

    # when it is redelivered three times (and the handler is never allowed to finish)
    for _ in range(3):
        run_consumer(delivery(redelivered=True), message, using="payments", handlers=handlers)
        InboxMessage.objects.using("payments").all().delete()  # as if the worker died before commit

    # then those three are handled, and a fourth is rejected for good and kept as a dead letter
    with pytest.raises(Reject):
        run_consumer(delivery(redelivered=True), message, using="payments", handlers=handlers)
    assert len(handled) == 3
    record = Redelivery.objects.using("payments").get(pk=message["event_id"])
    assert (record.deliveries, record.dead) == (4, True)
    assert "redelivered too often" in DeadLetter.objects.using("payments").get(pk=message["event_id"]).error


def test_a_first_delivery_costs_no_redelivery_bookkeeping() -> None:
    # when a message arrives for the first time
    run_consumer(delivery(redelivered=False), envelope(), using="payments", handlers={"ping": lambda p: None})

    # then no redelivery row is written
    assert not Redelivery.objects.using("payments").exists()
