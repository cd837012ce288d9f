"""Write an event to the caller's outbox, inside the caller's transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from ticketing.events.schema import Payload, encode
from ticketing.observability.tracing import current_traceparent

from .models import OutboxMessage

logger = logging.getLogger(__name__)

# The envelope being consumed right now, if any: events published while handling it carry its
# correlation id and name it as their cause.
current_envelope: ContextVar[dict[str, Any] | None] = ContextVar("current_envelope", default=None)


class OutboxError(RuntimeError):
    pass


def publish(
    event: Payload,
    *,
    using: str,
    aggregate_id: str | int,
    correlation_id: str | int | None = None,
) -> OutboxMessage:
    """Record ``event`` in the outbox of database ``using``; it is sent only if the transaction commits.

    The payload is checked against its declaration in the catalogue (InvalidPayload names the wrong
    field), and ``using`` must be the database of the service that publishes it.
    """
    if event.publisher.database != using:
        raise OutboxError(f"{event.name} is published by {event.publisher.name}, not from database {using!r}")
    return publish_unchecked(
        event.name, encode(event), using=using, aggregate_id=aggregate_id, correlation_id=correlation_id
    )


def publish_unchecked(
    event: str,
    payload: dict[str, Any],
    *,
    using: str,
    aggregate_id: str | int,
    correlation_id: str | int | None = None,
) -> OutboxMessage:
    """publish() without the catalogue: for the outbox's own tests and benchmarks (probe events).

    The services publish through publish(); a service that wrote here would skip the checks.
    """
    if not transaction.get_connection(using).in_atomic_block:
        raise OutboxError(f"publish({event!r}) must run inside transaction.atomic(using={using!r})")
    cause = current_envelope.get()
    if correlation_id is None:
        correlation_id = cause["correlation_id"] if cause else aggregate_id
    message = OutboxMessage(
        event=event,
        payload=payload,
        aggregate_id=str(aggregate_id),
        correlation_id=str(correlation_id),
        causation_id=cause["event_id"] if cause else None,
        traceparent=current_traceparent(),
    )
    backend(settings.OUTBOX_PUBLISH_BACKEND)(message, using)
    return message


PublishBackend = Callable[[OutboxMessage, str], None]


@cache
def backend(path: str) -> PublishBackend:
    loaded: PublishBackend = import_string(path)
    return loaded


# Rows held back by ``outbox_rows_together`` (a batch consumer): (database, rows), inserted in one statement.
held_rows: ContextVar[tuple[str, list[OutboxMessage]] | None] = ContextVar("held_rows", default=None)


@contextmanager
def outbox_rows_together(*, using: str) -> Iterator[None]:
    """Inside the caller's transaction: the rows published within go in with one INSERT at the end.

    A block that raises writes none of them (its transaction rolls back anyway).
    """
    rows: list[OutboxMessage] = []
    token = held_rows.set((using, rows))
    try:
        yield
    finally:
        held_rows.reset(token)
    if rows:
        OutboxMessage.objects.using(using).bulk_create(rows)


def store_in_outbox(message: OutboxMessage, using: str) -> None:
    """The publish backend: the row joins the caller's transaction; the relay sends it after the commit."""
    held = held_rows.get()
    if held is not None and held[0] == using:
        held[1].append(message)
    else:
        message.save(using=using, force_insert=True)
    if settings.OUTBOX_FAST_PATH:
        transaction.on_commit(partial(kick_relay, using), using=using)


def kick_relay(using: str) -> None:
    """The fast path (where there is no relay process woken by NOTIFY): relay right after the commit."""
    from .relay import relay_pending

    try:
        relay_pending(using=using, max_batches=1)
    except Exception:  # the other relays are the safety net; the caller's commit already stands
        logger.exception("fast-path relay of %s failed; the relay process or beat will retry", using)
