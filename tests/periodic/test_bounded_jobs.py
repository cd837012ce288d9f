"""Every periodic job does bounded work per run, on an index, whatever the history."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.db.models import QuerySet
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import all_databases
from ticketing.audit.repair import cancelled_after, refunds_request_missing
from ticketing.concerts.models import Reservation
from ticketing.concerts.selectors import reservations_past_hold, reservations_undeliverable
from ticketing.concerts.services import reservation_create, reservation_repair_stuck
from ticketing.idempotency.models import IdempotencyKey
from ticketing.idempotency.services import expired_keys, expired_keys_delete
from ticketing.outbox.models import DeadLetter, OutboxMessage, OutboxState, Redelivery
from ticketing.outbox.services import expired_rows, retention_sweep
from ticketing.payments.models import Payment

pytestmark = [all_databases]

LONG_AGO = timezone.now() - timedelta(days=400)


def plan(queryset: QuerySet[Any], using: str) -> str:
    """PostgreSQL's plan for the query with sequential scans priced out: only a fitting index avoids one."""
    with connections[using].cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    return queryset.explain()


@pytest.mark.parametrize(
    ("what", "index"),
    [
        ("sent outbox rows", "outbox_sent_at_idx"),
        ("inbox rows", "inbox_received_idx"),
        ("redelivery counts", "redelivery_seen_idx"),
        ("dead outbox rows", "outbox_dead_"),  # either index of dead rows only
        ("dead letters", "deadletter_created_idx"),
        ("dead redelivery records", "redelivery_seen_idx"),
    ],
)
def test_each_retention_query_walks_an_index_of_its_own(what: str, index: str) -> None:
    queryset = expired_rows(using="concerts")[what]
    assert index in plan(queryset.order_by().values_list("pk")[:1000], "concerts")


def test_the_expired_idempotency_keys_are_found_on_their_index() -> None:
    queryset = expired_keys(using="payments").order_by().values_list("pk")[:1000]
    assert "idempotency_idempotencykey_created_at" in plan(queryset, "payments")


def test_the_sweepers_queries_walk_indexes() -> None:
    past_hold = plan(reservations_past_hold(hold_seconds=300).values_list("id")[:500], "concerts")
    undeliverable = plan(reservations_undeliverable().values_list("id")[:500], "concerts")
    assert "concerts_res_status_created" in past_hold
    assert "outbox_dead_aggregate_idx" in undeliverable


def test_the_refund_check_walks_the_index_of_cancelled_reservations() -> None:
    queryset = cancelled_after((LONG_AGO, 0), until=timezone.now())[:500]
    assert "concerts_res_cancelled_upd" in plan(queryset, "concerts")


@pytest.mark.parametrize("alias", ["default", "payments"])
def test_expired_idempotency_keys_are_deleted_until_caught_up_in_one_run(alias: str, settings: Any) -> None:
    # given five expired keys and a fresh one, deleted two at a time
    settings.RETENTION_BATCH_SIZE = 2
    IdempotencyKey.objects.using(alias).bulk_create(
        IdempotencyKey(user_id=1, scope="s", key=f"k{n}", request_hash="h", status_code=200, created_at=LONG_AGO)
        for n in range(5)
    )
    IdempotencyKey.objects.using(alias).create(user_id=1, scope="s", key="fresh", request_hash="h", status_code=200)

    # when the expiry runs once
    deleted = expired_keys_delete(using=alias)

    # then every expired key went in that one run, and the fresh one stays
    assert deleted == 5
    assert list(IdempotencyKey.objects.using(alias).values_list("key", flat=True)) == ["fresh"]


def test_dead_rows_are_kept_for_their_own_longer_retention_then_deleted(settings: Any) -> None:
    # given dead rows of every kind, some past the dead retention and some only past the ordinary one
    settings.RETENTION_SECONDS, settings.DEAD_RETENTION_SECONDS = 3600, 30 * 86400
    past_dead, past_ordinary = LONG_AGO, timezone.now() - timedelta(days=2)
    for at in (past_dead, past_ordinary):
        OutboxMessage.objects.using("concerts").create(
            event="concert-reserve",
            aggregate_id="1",
            correlation_id="1",
            payload={},
            state=OutboxState.DEAD,
            created_at=at,
        )
        DeadLetter.objects.using("concerts").create(
            event_id=uuid.uuid4(), event="e", correlation_id="1", envelope={}, error="x", created_at=at
        )
        Redelivery.objects.using("concerts").create(event_id=uuid.uuid4(), envelope={}, dead=True, last_seen_at=at)

    # when retention runs
    retention_sweep(using="concerts")

    # then only the rows past the dead retention went
    assert list(OutboxMessage.objects.using("concerts").values_list("created_at", flat=True)) == [past_ordinary]
    assert list(DeadLetter.objects.using("concerts").values_list("created_at", flat=True)) == [past_ordinary]
    assert list(Redelivery.objects.using("concerts").values_list("last_seen_at", flat=True)) == [past_ordinary]


def test_the_sweeper_never_loads_the_dead_requests_into_an_id_list(make_user: Any, make_seats: Any) -> None:
    # given a stuck booking among a thousand dead concert-reserve rows of the past
    (seat,) = make_seats()
    stuck = reservation_create(user_id=make_user().id, seat_id=seat.id)
    OutboxMessage.objects.using("concerts").filter(event="concert-reserve").update(state=OutboxState.DEAD)
    OutboxMessage.objects.using("concerts").bulk_create(
        OutboxMessage(
            event="concert-reserve", aggregate_id=str(10**9 + n), correlation_id="x", payload={}, state="DEAD"
        )
        for n in range(1000)
    )

    # when the sweeper repairs stuck sagas
    with CaptureQueriesContext(connections["concerts"]) as queries:
        repaired = reservation_repair_stuck()

    # then the stuck booking is cancelled, and no statement carried a list of a thousand ids
    assert repaired == 1
    assert Reservation.objects.using("concerts").get(pk=stuck.pk).reason == "payment request undeliverable"
    assert max(len(query["sql"]) for query in queries.captured_queries) < 2000


@override_settings(MAX_SEATS_PER_USER=5)  # one user books all five
def test_the_refund_check_looks_at_one_page_a_run_and_then_starts_over(make_user: Any, make_seats: Any) -> None:
    # given five cancelled reservations whose payments were never refunded
    user = make_user()
    seats = make_seats(count=5)
    for seat in seats:
        reservation = reservation_create(user_id=user.id, seat_id=seat.id)
        Payment.objects.using("payments").create(
            reservation_id=reservation.id, user_id=user.id, amount=reservation.amount, status="SUCCEEDED"
        )
    old = timezone.now() - timedelta(minutes=5)
    Reservation.objects.using("concerts").filter(seat__in=seats).update(status="CANCELED", updated_at=old)

    # when the check runs four times, two reservations a page
    with transaction.atomic(using="concerts"):
        asked = [refunds_request_missing(page=2) for _ in range(4)]

    # then it went through them two at a time, and started over after the last
    assert asked == [2, 2, 1, 2]
    assert settings.RESERVATION_HOLD_SECONDS  # (the hold plays no part here)
