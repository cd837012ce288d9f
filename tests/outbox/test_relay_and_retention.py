"""The relay's claim and failure bookkeeping, and retention; no workers needed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from tests.conftest import all_databases
from ticketing.outbox.models import InboxMessage, OutboxMessage, OutboxState
from ticketing.outbox.publish import publish_unchecked
from ticketing.outbox.relay import claim_due, claim_due_rows, mark_sent, record_failure, relay_pending
from ticketing.outbox.services import retention_sweep

pytestmark = [all_databases]


def outbox_row(event: str = "unrouted-event", **fields: Any) -> OutboxMessage:
    with transaction.atomic(using="concerts"):
        row = publish_unchecked(event, {"n": 1}, using="concerts", aggregate_id=1)
    OutboxMessage.objects.using("concerts").filter(pk=row.pk).update(**fields)
    return OutboxMessage.objects.using("concerts").get(pk=row.pk)


def test_a_claim_leases_the_oldest_due_row_of_each_saga_and_nothing_twice() -> None:
    # given two sagas of two events each, and a third saga whose only row is not due yet
    with transaction.atomic(using="concerts"):
        rows = [
            publish_unchecked("e", {"n": n}, using="concerts", aggregate_id=n, correlation_id=f"saga-{n % 2}")
            for n in range(4)
        ]
    later = outbox_row(next_attempt_at=timezone.now() + timedelta(minutes=5))

    # when a relay claims, and claims again before the lease ends
    first = claim_due_rows(using="concerts", limit=10)
    again = claim_due_rows(using="concerts", limit=10)

    # then the first claim took each saga's first event, in id order, leased; the second took nothing
    assert [row.pk for row in first] == [rows[0].pk, rows[1].pk]
    leases = OutboxMessage.objects.using("concerts").filter(pk__in=[row.pk for row in first])
    assert all(lease.next_attempt_at > timezone.now() for lease in leases)
    assert again == []
    assert later.pk not in {row.pk for row in first}


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


def test_a_relay_whose_lease_was_taken_over_can_neither_fail_nor_mark_the_rows() -> None:
    # given a row claimed by relay A, whose lease ran out, and then claimed, sent and marked by relay B
    row = outbox_row()
    a = claim_due(using="concerts", limit=10)
    OutboxMessage.objects.using("concerts").filter(pk=row.pk).update(next_attempt_at=timezone.now())
    b = claim_due(using="concerts", limit=10)
    assert [r.pk for r in a.rows] == [r.pk for r in b.rows] == [row.pk]
    mark_sent(b, [row.pk])

    # when A, late, records a failure of the row and then marks it sent
    record_failure(a, a.rows, error="confirms did not come")
    mark_sent(a, [row.pk])

    # then the row is as B left it
    row.refresh_from_db(using="concerts")
    assert (row.state, row.attempts, row.last_error, row.lease) == (OutboxState.SENT, 0, "", None)


def test_a_failed_row_waits_for_its_backoff() -> None:
    # given a row that just failed once
    row = outbox_row()
    relay_pending(using="concerts")
    row.refresh_from_db(using="concerts")

    # then it is not due again at once
    assert row.state == OutboxState.PENDING
    assert row.attempts == 1
    assert row.next_attempt_at > timezone.now()


def old_rows_to_retire() -> tuple[list[int], set[int]]:
    """Three old sent rows and an old inbox row (to go); an old unsent row and a recent sent one (to stay)."""
    old = timezone.now() - timedelta(hours=2)
    old_sent = [outbox_row(state=OutboxState.SENT, sent_at=old).pk for _ in range(3)]
    keep = {outbox_row(created_at=old).pk, outbox_row(state=OutboxState.SENT, sent_at=timezone.now()).pk}
    InboxMessage.objects.using("concerts").create(
        event_id="00000000-0000-0000-0000-000000000001", event="e", correlation_id="c", received_at=old
    )
    return old_sent, keep


@override_settings(RETENTION_SECONDS=3600, RETENTION_BATCH_SIZE=2)
def test_retention_deletes_every_old_sent_row_batch_by_batch_and_keeps_the_rest() -> None:
    # given more old sent rows than one batch holds, and rows that must stay
    old_sent, keep = old_rows_to_retire()

    # when retention runs once with a batch of two
    deleted = retention_sweep(using="concerts")

    # then the old sent rows and the old inbox row went, in one sweep, and nothing else
    assert deleted == 4
    remaining = set(OutboxMessage.objects.using("concerts").values_list("pk", flat=True))
    assert remaining == keep
    assert not set(old_sent) & remaining
    assert not InboxMessage.objects.using("concerts").exists()


@override_settings(RETENTION_SECONDS=3600, RETENTION_BATCH_SIZE=2, RETENTION_MAX_BATCHES=1)
def test_one_sweep_deletes_at_most_its_batches_per_table() -> None:
    # given three old sent rows and an old inbox row
    old_rows_to_retire()

    # when retention runs twice, allowed one batch of two per table each time
    first = retention_sweep(using="concerts")
    second = retention_sweep(using="concerts")

    # then the first sweep stopped at its bound (two outbox rows, the inbox row) and the second finished
    assert (first, second) == (3, 1)
