"""The relay: move committed outbox rows to the broker, at least once, in order per saga.

A relay claims due rows (``SELECT ... FOR UPDATE SKIP LOCKED``) and leases them, in one statement: it
moves ``next_attempt_at`` forward and stamps the rows with a lease token of its own, so that no lock is
held while it talks to the broker and several relays can run at once. It publishes with publisher
confirms and marks rows sent only after the broker confirmed them. Every write after the claim is
fenced on the lease token: a relay whose lease ran out (another relay claimed the rows since) changes
nothing. A relay that dies between publish and mark leaves the rows to fall due again when the lease
ends: they are published twice and the consumers' inbox absorbs the duplicate.

Only a row's own failure (no route, nacked or returned by the broker) spends one of its attempts. When
the broker cannot be reached the relay gives the rows back untouched and pauses (``broker_pause``).

Small drains cost few round trips. The relay process defers marking (``DeferredMarks``): the rows a drain
published are marked sent by the same statement that makes the next claim on that database, so that under
load a drain costs one statement; when no claim follows within ``OUTBOX_RELAY_MARK_DELAY_SECONDS`` the
marks go alone. A deferred row stays leased (and blocks the later rows of its saga) until it is marked; a
relay that dies with marks deferred leaves those rows to fall due again, like one that died before its mark.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone

from ticketing.observability import metrics, tracing

from .backoff import jittered_backoff
from .broker import BrokerUnavailable, Outgoing, publish_batch
from .models import OutboxMessage, OutboxState

logger = logging.getLogger(__name__)


class BrokerPause:
    """This process's view of the broker: after a failed publish, claim nothing until the pause is over.

    The pause grows with consecutive failures up to ``OUTBOX_BROKER_BACKOFF_CAP_SECONDS`` and is reset by
    the first publish that goes through.
    """

    def __init__(self) -> None:
        self.failures = 0
        self.until = 0.0

    def active(self) -> bool:
        return time.monotonic() < self.until

    def broker_failed(self) -> float:
        self.failures += 1
        delay = jittered_backoff(self.failures, base=0.1, cap=settings.OUTBOX_BROKER_BACKOFF_CAP_SECONDS)
        self.until = time.monotonic() + delay
        return delay

    def broker_answered(self) -> None:
        self.failures = 0
        self.until = 0.0


broker_pause = BrokerPause()


@dataclass
class Claim:
    """Rows leased by one claim, the token that fences every later write, and when the lease ends."""

    rows: list[OutboxMessage]
    lease: uuid.UUID
    expires: float  # time.monotonic()
    using: str


@dataclass
class DeferredMarks:
    """Rows of one database the broker confirmed, not marked sent yet: the next claim marks them."""

    ids: list[int] = field(default_factory=list)
    leases: set[uuid.UUID] = field(default_factory=set)

    def add(self, lease: uuid.UUID, ids: list[int]) -> None:
        if ids:
            self.ids.extend(ids)
            self.leases.add(lease)

    def take(self) -> tuple[list[int], list[str]]:
        ids, leases = self.ids, [str(lease) for lease in self.leases]
        self.ids, self.leases = [], set()
        return ids, leases


def relay_pending(
    *,
    using: str,
    max_batches: int = 10,
    batch_size: int | None = None,
    marks: DeferredMarks | None = None,
    before_claim: Callable[[], None] | None = None,
) -> int:
    """Publish due rows of database ``using`` until none is left or ``max_batches`` ran; return the count sent.

    With ``marks`` (the relay process, on PostgreSQL) the rows sent are left in it for the next claim to
    mark; ``before_claim`` runs before every claim (the relay process reads its notifications there, so
    that one drain answers every commit notified before it).
    """
    limit = batch_size or settings.OUTBOX_BATCH_SIZE
    sent_total = 0
    for _ in range(max_batches):
        if broker_pause.active():
            break
        if before_claim is not None:
            before_claim()
        claim = claim_due(using=using, limit=limit, marks=marks)
        if not claim.rows:
            break
        sent = publish_claim(claim, marks=marks)
        sent_total += sent
        if len(claim.rows) < limit or not sent:  # a batch that failed: try again later
            break
    return sent_total


# A row waits while an earlier row of its saga is unsent, so each saga's events leave in order. The
# claim and its lease are one statement, its own transaction: no lock outlives it, and a claim costs
# one round trip. The CTE is materialized so that the candidates are locked (and limited) exactly once;
# SKIP LOCKED lets relays pass over each other's candidates.
# With marks deferred by earlier drains, the same statement writes them first (MARK_CTE). A
# data-modifying CTE runs once whether or not it is read; the claim's snapshot still sees the marked
# rows pending (so the later rows of their sagas wait for the claim after), and never takes them again.
MARK_CTE = """marked AS (
    UPDATE {table} SET state = 'SENT', sent_at = %(now)s, lease = NULL
    WHERE id = ANY(%(sent)s) AND lease = ANY(%(sent_leases)s::uuid[])
), """
NOT_MARKED = "AND NOT (id = ANY(%(sent)s))"
CLAIM_SQL = """
WITH {mark}claimed AS MATERIALIZED (
    SELECT id FROM {table} AS candidate
    WHERE state = 'PENDING' AND next_attempt_at <= %(now)s {not_marked}
      AND NOT EXISTS (
          SELECT 1 FROM {table} AS earlier
          WHERE earlier.state = 'PENDING' AND earlier.correlation_id = candidate.correlation_id
            AND earlier.id < candidate.id
      )
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {table} SET next_attempt_at = %(lease_end)s, lease = %(lease)s
WHERE id IN (SELECT id FROM claimed)
RETURNING *
"""


def claim_sql(*, table: str, marking: bool) -> str:
    mark = MARK_CTE.format(table=table) if marking else ""
    return CLAIM_SQL.format(mark=mark, table=table, not_marked=NOT_MARKED if marking else "")


def claim_due(*, using: str, limit: int, marks: DeferredMarks | None = None) -> Claim:
    """Lease up to ``limit`` due rows of database ``using``, oldest first, for this relay alone.

    ``marks`` deferred by earlier drains are written by the same statement.
    """
    connection = connections[using]
    now = timezone.now()
    lease_seconds = settings.OUTBOX_CLAIM_LEASE_SECONDS
    expires = time.monotonic() + lease_seconds
    lease = uuid.uuid4()
    marking = marks is not None and bool(marks.ids)
    sql = claim_sql(table=connection.ops.quote_name(OutboxMessage._meta.db_table), marking=marking)
    params: dict[str, object] = {
        "now": connection.ops.adapt_datetimefield_value(now),
        "limit": limit,
        "lease_end": connection.ops.adapt_datetimefield_value(now + timedelta(seconds=lease_seconds)),
        "lease": OutboxMessage._meta.get_field("lease").get_db_prep_value(lease, connection),
    }
    if marking:
        assert marks is not None
        params["sent"], params["sent_leases"] = marks.take()
    rows = sorted(OutboxMessage.objects.using(using).raw(sql, params), key=lambda row: row.id)
    return Claim(rows=rows, lease=lease, expires=expires, using=using)


def claim_due_rows(*, using: str, limit: int) -> list[OutboxMessage]:
    """The rows of a claim (for callers that publish by hand and never mark, such as crash tests)."""
    return claim_due(using=using, limit=limit).rows


def marks_flush(*, using: str, marks: DeferredMarks) -> int:
    """Write the deferred marks alone (no claim followed them in time); the count of rows marked."""
    ids, leases = marks.take()
    if not ids:
        return 0
    return (
        OutboxMessage.objects.using(using)
        .filter(id__in=ids, lease__in=leases)
        .update(state=OutboxState.SENT, sent_at=timezone.now(), lease=None)
    )


def publish_claim(claim: Claim, *, marks: DeferredMarks | None = None) -> int:
    """Publish a claimed batch; mark sent what the broker confirmed (now, or with ``marks``), fail what it refused."""
    rows = claim.rows
    unroutable = [row for row in rows if not settings.OUTBOX_EVENT_ROUTES.get(row.event)]
    if unroutable:
        record_failure(claim, unroutable, error="no route for the event in OUTBOX_EVENT_ROUTES")
        rows = [row for row in rows if row not in unroutable]
    if not rows:
        return 0
    outgoing = outgoing_of(rows)
    # Give up before the lease ends (with a margin for the mark), so that no other relay takes the rows
    # while this one may still publish them.
    deadline = claim.expires - min(1.0, settings.OUTBOX_CLAIM_LEASE_SECONDS / 4)
    try:
        refusals = publish_batch([message for _, message in outgoing], deadline=deadline)
    except BrokerUnavailable as exc:
        pause = broker_pause.broker_failed()
        logger.warning("outbox %s: publishing %d rows failed, pausing %.1f s: %s", claim.using, len(rows), pause, exc)
        release(claim, rows, error=f"broker unavailable: {exc}")
        return 0
    broker_pause.broker_answered()
    refused: dict[int, str] = {}
    for (carried, _), refusal in zip(outgoing, refusals, strict=True):
        if refusal is not None:
            for row in carried:
                refused.setdefault(row.id, refusal)
    for refusal, ids in group_by_reason(refused).items():
        record_failure(claim, [row for row in rows if row.id in ids], error=refusal)
    confirmed = [row.id for row in rows if row.id not in refused]
    if marks is not None:
        marks.add(claim.lease, confirmed)
        sent = len(confirmed)
    else:
        sent = mark_sent(claim, confirmed)
    metrics.relay_batch(database=claim.using, claimed=len(claim.rows), sent=sent)
    return sent


def group_by_reason(refused: dict[int, str]) -> dict[str, set[int]]:
    groups: dict[str, set[int]] = defaultdict(set)
    for row_id, reason in refused.items():
        groups[reason].add(row_id)
    return groups


def outgoing_of(rows: list[OutboxMessage]) -> list[tuple[list[OutboxMessage], Outgoing]]:
    """The messages of a claim, each with the rows it carries.

    With ``CONSUMER_BATCH_SIZE`` above 1, the rows of each queue go in order in messages of up to that
    many events, to the queue's batch consumer (one transaction applies them); else one message per row
    and queue. Either way a refused message fails every row it carries.
    """
    size = settings.CONSUMER_BATCH_SIZE
    if size <= 1:
        return [([row], message) for row in rows for message in messages_of(row)]
    by_queue: dict[str, list[tuple[OutboxMessage, Outgoing]]] = defaultdict(list)
    for row in rows:
        for message in messages_of(row):
            by_queue[message.queue].append((row, message))
    outgoing = []
    for queue, messages in by_queue.items():
        for start in range(0, len(messages), size):
            chunk = messages[start : start + size]
            if len(chunk) == 1:
                outgoing.append(([chunk[0][0]], chunk[0][1]))
                continue
            batch = [message.envelope for _, message in chunk]
            outgoing.append(
                ([row for row, _ in chunk], Outgoing(queue, batch[0], {"events": str(len(batch))}, batch=batch))
            )
    return outgoing


def messages_of(row: OutboxMessage) -> list[Outgoing]:
    """One message per queue that consumes the row's event."""
    queues = settings.OUTBOX_EVENT_ROUTES[row.event]
    headers = {"correlation_id": row.correlation_id, "event_id": str(row.event_id)}
    if row.traceparent:  # the relay's hop joins the saga's trace; the headers carry it to the consumer
        headers |= tracing.relay_span_headers(
            traceparent=row.traceparent, event=row.event, database=row._state.db or "", committed_at=row.created_at
        )
    return [Outgoing(queue, row.envelope(), headers) for queue in queues]


def held(claim: Claim, ids: list[int]) -> QuerySet[OutboxMessage]:
    """The rows among ``ids`` that this claim still holds: the fence of every write after the claim."""
    return OutboxMessage.objects.using(claim.using).filter(id__in=ids, lease=claim.lease)


def mark_sent(claim: Claim, ids: list[int]) -> int:
    """One statement; rows another relay claimed since are left alone (that relay marks them)."""
    if not ids:
        return 0
    marked = held(claim, ids).update(state=OutboxState.SENT, sent_at=timezone.now(), lease=None)
    if marked < len(ids):
        logger.info("outbox %s: %d rows were claimed by another relay meanwhile", claim.using, len(ids) - marked)
    return len(ids)


def release(claim: Claim, rows: list[OutboxMessage], *, error: str) -> None:
    """Give rows back, due at once, their attempts untouched: the broker was away, not their fault."""
    held(claim, [row.id for row in rows]).update(next_attempt_at=timezone.now(), lease=None, last_error=error[:2000])


def record_failure(claim: Claim, rows: list[OutboxMessage], *, error: str) -> None:
    """A row's own failure: one more attempt spent, backoff, dead after ``OUTBOX_MAX_ATTEMPTS``.

    The rows' attempts are those the claim read; the fence makes that exact (no other relay wrote them
    since), so the update is one statement per attempts value (usually one).
    """
    now = timezone.now()
    by_attempts: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_attempts[row.attempts + 1].append(row.id)
    for attempts, ids in by_attempts.items():
        dead = attempts >= settings.OUTBOX_MAX_ATTEMPTS
        delay = jittered_backoff(attempts, base=1, cap=settings.OUTBOX_BACKOFF_CAP_SECONDS)
        updated = held(claim, ids).update(
            attempts=attempts,
            last_error=error[:2000],
            state=OutboxState.DEAD if dead else OutboxState.PENDING,
            next_attempt_at=now + timedelta(seconds=delay),
            lease=None,
        )
        if dead and updated:
            logger.error("outbox %s: %d rows dead after %d attempts: %s", claim.using, updated, attempts, error)


def replay(*, using: str, ids: list[int]) -> int:
    """Make dead or sent rows due again (the admin's "publish again"); a relay holding one loses its lease."""
    return (
        OutboxMessage.objects.using(using)
        .filter(id__in=ids)
        .update(state=OutboxState.PENDING, next_attempt_at=timezone.now(), attempts=0, last_error="", lease=None)
    )
