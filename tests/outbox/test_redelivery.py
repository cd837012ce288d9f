"""A message that keeps coming back (its worker dies every time) is set aside after a bound."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

from django.test import override_settings

from tests.conftest import all_databases
from ticketing.outbox.consume import run_consumer
from ticketing.outbox.models import InboxMessage, Redelivery

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

    # when it is redelivered four times in all (and the handler is never allowed to finish)
    outcomes = []
    for _ in range(4):
        before = len(handled)
        run_consumer(delivery(redelivered=True), message, using="payments", handlers=handlers)
        outcomes.append(len(handled) > before)
        InboxMessage.objects.using("payments").all().delete()  # as if the worker died before commit

    # then the first three deliveries are handled and the fourth is set aside as dead
    assert outcomes == [True, True, True, False]
    record = Redelivery.objects.using("payments").get(pk=message["event_id"])
    assert (record.deliveries, record.dead) == (4, True)


def test_a_first_delivery_costs_no_redelivery_bookkeeping() -> None:
    # when a message arrives for the first time
    run_consumer(delivery(redelivered=False), envelope(), using="payments", handlers={"ping": lambda p: None})

    # then no redelivery row is written
    assert not Redelivery.objects.using("payments").exists()
