"""The relay's failure bookkeeping, and retention; no workers needed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from tests.conftest import all_databases
from ticketing.outbox.models import InboxMessage, OutboxMessage, OutboxState
from ticketing.outbox.publish import publish
from ticketing.outbox.relay import relay_pending
from ticketing.outbox.services import retention_sweep

pytestmark = [all_databases]


def outbox_row(event: str = "unrouted-event", **fields: Any) -> OutboxMessage:
    with transaction.atomic(using="concerts"):
        row = publish(event, {"n": 1}, using="concerts", aggregate_id=1)
    OutboxMessage.objects.using("concerts").filter(pk=row.pk).update(**fields)
    return OutboxMessage.objects.using("concerts").get(pk=row.pk)


@override_settings(OUTBOX_MAX_ATTEMPTS=3)
def test_a_row_that_cannot_be_published_backs_off_and_goes_dead_after_its_attempts() -> None:
    # given a row whose event has no route (so every publish fails)
    row = outbox_row()

    # when the relay tries it three times, each time once it is due again
    for _ in range(3):
        OutboxMessage.objects.using("concerts").filter(pk=row.pk).update(next_attempt_at=timezone.now())
        assert relay_pending(using="concerts") == 0
    row.refresh_from_db(using="concerts")

    # then it is dead, visibly, with its error and attempts
    assert (row.state, row.attempts) == (OutboxState.DEAD, 3)
    assert "no route" in row.last_error


def test_a_failed_row_waits_for_its_backoff() -> None:
    # given a row that just failed once
    row = outbox_row()
    relay_pending(using="concerts")
    row.refresh_from_db(using="concerts")

    # then it is not due again at once
    assert row.state == OutboxState.PENDING
    assert row.attempts == 1
    assert row.next_attempt_at > timezone.now()


@override_settings(RETENTION_SECONDS=3600, RETENTION_BATCH_SIZE=2)
def test_retention_deletes_old_sent_rows_in_bounded_batches_and_keeps_the_rest() -> None:
    # given three old sent rows, one old unsent row, one recent sent row, and an old inbox row
    old = timezone.now() - timedelta(hours=2)
    old_sent = [outbox_row(state=OutboxState.SENT, sent_at=old).pk for _ in range(3)]
    unsent = outbox_row(created_at=old).pk
    recent = outbox_row(state=OutboxState.SENT, sent_at=timezone.now()).pk
    InboxMessage.objects.using("concerts").create(
        event_id="00000000-0000-0000-0000-000000000001", event="e", correlation_id="c", received_at=old
    )

    # when retention runs twice with a batch of two
    first = retention_sweep(using="concerts")
    second = retention_sweep(using="concerts")

    # then the old sent rows and the old inbox row went, two outbox rows at a time, and nothing else
    assert (first, second) == (3, 1)
    remaining = set(OutboxMessage.objects.using("concerts").values_list("pk", flat=True))
    assert remaining == {unsent, recent}
    assert not set(old_sent) & remaining
    assert not InboxMessage.objects.using("concerts").exists()
