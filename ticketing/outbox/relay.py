"""The relay: move committed outbox rows to the broker, at least once, in order per saga.

A relay claims due rows (``SELECT ... FOR UPDATE SKIP LOCKED``) and leases them by moving
``next_attempt_at`` forward, in one statement, so that no lock is held while it talks to the broker and
several relays can run at once. It publishes with publisher confirms and marks rows sent only after
the broker confirmed them. A relay that dies between publish and mark leaves the rows to fall due
again when the lease ends: they are published twice and the consumers' inbox absorbs the duplicate.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from .backoff import jittered_backoff
from .broker import Outgoing, publish_batch
from .models import OutboxMessage, OutboxState

logger = logging.getLogger(__name__)


def relay_pending(*, using: str, max_batches: int = 10, batch_size: int | None = None) -> int:
    """Publish due rows of database ``using`` until none is left or ``max_batches`` ran; return the count sent."""
    limit = batch_size or settings.OUTBOX_BATCH_SIZE
    sent_total = 0
    for _ in range(max_batches):
        rows = claim_due_rows(using=using, limit=limit)
        if not rows:
            break
        sent = publish_rows(rows, using=using)
        sent_total += sent
        if len(rows) < limit or not sent:  # a batch that failed: the broker is away, try again later
            break
    return sent_total


# A row waits while an earlier row of its saga is unsent, so each saga's events leave in order. The
# claim and its lease are one statement, its own transaction: no lock outlives it, and a claim costs
# one round trip. The CTE is materialized so that the candidates are locked (and limited) exactly once.
CLAIM_SQL = """
WITH claimed AS MATERIALIZED (
    SELECT id FROM {table} AS candidate
    WHERE state = 'PENDING' AND next_attempt_at <= %(now)s
      AND NOT EXISTS (
          SELECT 1 FROM {table} AS earlier
          WHERE earlier.state = 'PENDING' AND earlier.correlation_id = candidate.correlation_id
            AND earlier.id < candidate.id
      )
    ORDER BY id
    LIMIT %(limit)s
    {lock}
)
UPDATE {table} SET next_attempt_at = %(lease_end)s
WHERE id IN (SELECT id FROM claimed)
RETURNING *
"""


def claim_due_rows(*, using: str, limit: int) -> list[OutboxMessage]:
    """Lease up to ``limit`` due rows of database ``using``, oldest first, for this relay alone."""
    connection = connections[using]
    now = timezone.now()
    lease_end = now + timedelta(seconds=settings.OUTBOX_CLAIM_LEASE_SECONDS)
    # PostgreSQL: relays skip each other's candidates. SQLite: the statement holds the write lock.
    lock = "FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = CLAIM_SQL.format(table=connection.ops.quote_name(OutboxMessage._meta.db_table), lock=lock)
    params = {
        "now": connection.ops.adapt_datetimefield_value(now),
        "limit": limit,
        "lease_end": connection.ops.adapt_datetimefield_value(lease_end),
    }
    return sorted(OutboxMessage.objects.using(using).raw(sql, params), key=lambda row: row.id)


def publish_rows(rows: list[OutboxMessage], *, using: str) -> int:
    """Publish a claimed batch; mark sent what the broker confirmed, back off the rest."""
    unroutable = [row for row in rows if not settings.OUTBOX_EVENT_ROUTES.get(row.event)]
    if unroutable:
        record_failure(unroutable, error="no route for the event in OUTBOX_EVENT_ROUTES", using=using)
        rows = [row for row in rows if row not in unroutable]
    outgoing = [(row, message) for row in rows for message in messages_of(row)]
    try:
        confirmed = publish_batch([message for _, message in outgoing])
    except Exception as exc:  # the broker refused or went away: the whole batch waits
        logger.warning("outbox %s: publishing %d rows failed: %r", using, len(rows), exc)
        record_failure(rows, error=repr(exc), using=using)
        return 0
    nacked = {row.id for (row, _), ok in zip(outgoing, confirmed, strict=True) if not ok}
    if nacked:
        record_failure([row for row in rows if row.id in nacked], error="nacked by the broker", using=using)
    sent = [row.id for row in rows if row.id not in nacked]
    if sent:
        OutboxMessage.objects.using(using).filter(id__in=sent).update(state=OutboxState.SENT, sent_at=timezone.now())
    return len(sent)


def messages_of(row: OutboxMessage) -> list[Outgoing]:
    """One message per queue that consumes the row's event."""
    queues = settings.OUTBOX_EVENT_ROUTES[row.event]
    headers = {"correlation_id": row.correlation_id, "event_id": str(row.event_id)}
    return [Outgoing(queue, row.envelope(), headers) for queue in queues]


def record_failure(rows: list[OutboxMessage], *, error: str, using: str) -> None:
    now = timezone.now()
    for row in rows:
        row.attempts += 1
        row.last_error = error[:2000]
        if row.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            row.state = OutboxState.DEAD
            logger.error("outbox %s: %s is dead after %d attempts: %s", using, row, row.attempts, error)
        delay = jittered_backoff(row.attempts, base=1, cap=settings.OUTBOX_BACKOFF_CAP_SECONDS)
        row.next_attempt_at = now + timedelta(seconds=delay)
    OutboxMessage.objects.using(using).bulk_update(rows, ["attempts", "last_error", "state", "next_attempt_at"])


def replay(*, using: str, ids: list[int]) -> int:
    """Make dead or sent rows due again (the admin's "publish again")."""
    return (
        OutboxMessage.objects.using(using)
        .filter(id__in=ids)
        .update(state=OutboxState.PENDING, next_attempt_at=timezone.now(), attempts=0, last_error="")
    )
