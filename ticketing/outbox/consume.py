"""Apply a consumed event exactly once: the inbox row and the effect commit together."""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import current_app
from celery.exceptions import Reject, Retry
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from ticketing.events.catalogue import CATALOGUE
from ticketing.events.schema import GiveUp, Handler, InvalidPayload, decode, task_name
from ticketing.observability.events import consuming

from .backoff import jittered_backoff
from .models import InboxMessage, Redelivery
from .publish import current_envelope, outbox_rows_together
from .services import dead_letter_record

logger = logging.getLogger(__name__)


class MalformedEvent(ValueError):
    """The message can never be handled as it is: retrying will not help."""


def consume(envelope: Any, *, using: str, handlers: Mapping[str, Handler]) -> bool:
    """Run the handler of ``envelope`` in one transaction with its inbox row.

    Returns False when the event was consumed before (a redelivery or a duplicate publish): then
    nothing happens. The handler may ``publish()``; those events carry this one's correlation id.
    """
    event_id, event, raw = validate_envelope(envelope)
    handler = handlers.get(event)
    if handler is None:
        raise MalformedEvent(f"no handler for event {event!r} in {using}")
    payload = typed_payload(event_id, event, raw)
    token = current_envelope.set(envelope)
    try:
        with consuming(envelope, using=using) as consumption, transaction.atomic(using=using):
            if not record_in_inbox(
                event_id=event_id, event=event, correlation_id=envelope["correlation_id"], using=using
            ):
                consumption.duplicate = True
                return False
            try:
                handler(payload)
            except (KeyError, TypeError, ValueError) as exc:
                raise MalformedEvent(f"{event} {event_id}: bad payload: {exc!r}") from exc
    finally:
        current_envelope.reset(token)
    return True


def validate_envelope(envelope: Any) -> tuple[uuid.UUID, str, dict[str, Any]]:
    if not isinstance(envelope, dict):
        raise MalformedEvent("the message is not a JSON object")
    try:
        event_id = uuid.UUID(str(envelope["event_id"]))
        event = envelope["event"]
        payload = envelope["payload"]
        envelope["correlation_id"] = str(envelope["correlation_id"])
    except (KeyError, ValueError) as exc:
        raise MalformedEvent(f"bad envelope: {exc!r}") from exc
    if not isinstance(event, str) or not isinstance(payload, dict):
        raise MalformedEvent("bad envelope: event must be a string and payload an object")
    return event_id, event, payload


def typed_payload(event_id: uuid.UUID, event: str, raw: dict[str, Any]) -> Any:
    """The payload as its declaration in the catalogue types it; an event outside the catalogue (the
    outbox's own probes in tests and benchmarks) keeps its dict. ``manage.py check`` sees to it that
    every service's handler is of a declared event."""
    payload_type = CATALOGUE.events.get(event)
    if payload_type is None:
        return raw
    try:
        return decode(payload_type, raw)
    except InvalidPayload as exc:
        raise MalformedEvent(f"{event} {event_id}: bad payload: {exc}") from exc


def record_in_inbox(*, event_id: uuid.UUID, event: str, correlation_id: str, using: str) -> bool:
    """Insert the inbox row; False if it was there already. One statement, no savepoint."""
    table = InboxMessage._meta.db_table
    connection = connections[using]
    received_at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (event_id, event, correlation_id, received_at) "  # noqa: S608 (table name is ours)
            "VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            [event_id, event, correlation_id, received_at],
        )
        return cursor.rowcount == 1


# --- The Celery side: every service's consumer task is a thin wrapper around run_consumer ------------

CONSUMER_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "max_retries": None,  # bounded by settings.CONSUMER_MAX_RETRIES in run_consumer
}


class TransientError(Exception):
    """Trouble that may pass (a gateway timeout, a lost connection): the consumer retries with backoff."""


TRANSIENT_ERRORS = (OperationalError, InterfaceError, TransientError)


def run_consumer(
    task: Any,
    envelope: Any,
    *,
    using: str,
    handlers: Mapping[str, Handler],
    give_up: Mapping[str, GiveUp] | None = None,
) -> None:
    """Consume with retries for transient errors; whatever cannot be handled becomes a dead letter.

    When the retries run out, the event's ``give_up`` handler (if any) turns it into the saga's
    failure path, exactly once like any other effect. No failure is acknowledged without a trace: what
    could not even be recorded (the database is away) is rejected with requeue, so the message stays
    on the broker.
    """
    # A connection broken under the previous task (a restarted or terminated backend) is replaced here;
    # Celery keeps connections between tasks (CELERY_DB_REUSE_MAX) and would not notice.
    refresh_connection(using)
    try:
        deliver(task, envelope, using=using, handlers=handlers, give_up=give_up or {})
    except (Retry, Reject):
        raise
    except Exception as exc:
        keep_on_broker(envelope, error=exc, using=using)


def deliver(
    task: Any, envelope: Any, *, using: str, handlers: Mapping[str, Handler], give_up: Mapping[str, GiveUp]
) -> None:
    if task.request.delivery_info.get("redelivered") and redelivery_exhausted(envelope, using=using):
        dead_letter_record(envelope, error="redelivered too often (its worker died each time)", using=using)
        raise Reject("redelivered too often", requeue=False)
    try:
        try:
            consume(envelope, using=using, handlers=handlers)
        except TRANSIENT_ERRORS as exc:
            retry_or_give_up(task, envelope, error=exc, using=using, give_up=give_up)
    except (Retry, Reject):
        raise
    except MalformedEvent as exc:
        dead_letter_record(envelope, error=str(exc), using=using)
    except Exception as exc:  # a bug, a constraint, a missing migration: set it aside, with the error
        dead_letter_record(envelope, error=f"unexpected error: {describe(exc)}", using=using)


def retry_or_give_up(task: Any, envelope: Any, *, error: Exception, using: str, give_up: Mapping[str, GiveUp]) -> None:
    retries = task.request.retries
    if retries < settings.CONSUMER_MAX_RETRIES:
        countdown = jittered_backoff(
            retries, base=settings.CONSUMER_RETRY_BASE_SECONDS, cap=settings.CONSUMER_RETRY_CAP_SECONDS
        )
        raise task.retry(exc=error, countdown=countdown) from error
    handle_give_up(envelope, error=error, using=using, give_up=give_up)


def describe(exc: BaseException) -> str:
    """The exception and its origin, for the dead letter: enough to find the bug without the logs."""
    where = traceback.extract_tb(exc.__traceback__)[-3:]
    frames = "; ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}" for frame in where)
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} (at {frames})"


def keep_on_broker(envelope: Any, *, error: Exception, using: str) -> None:
    """Nothing could be recorded: reject the message with requeue, after a pause, so it comes back later.

    Acknowledging it (what Celery does with a task that raised) would drop the event without a trace.
    The pause keeps a worker whose database is down from spinning on the message.
    """
    event_id = envelope.get("event_id") if isinstance(envelope, dict) else None
    logger.exception("%s: could not handle or set aside %s, requeued: %r", using, event_id, error)
    time.sleep(KEEP_ON_BROKER_PAUSE_SECONDS)
    raise Reject(repr(error), requeue=True) from error


KEEP_ON_BROKER_PAUSE_SECONDS = 1.0


def refresh_connection(using: str) -> None:
    connection = connections[using]
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def handle_give_up(envelope: Any, *, error: Exception, using: str, give_up: Mapping[str, GiveUp]) -> None:
    reason = f"gave up after {settings.CONSUMER_MAX_RETRIES} retries: {error}"
    event = envelope.get("event") if isinstance(envelope, dict) else None
    on_give_up = give_up.get(event) if isinstance(event, str) else None
    if on_give_up is None:
        dead_letter_record(envelope, error=reason, using=using, attempts=settings.CONSUMER_MAX_RETRIES + 1)
        return
    logger.warning("%s: %s", using, reason)
    consume(envelope, using=using, handlers={event: partial(on_give_up, reason=reason)})  # type: ignore[dict-item]


def redelivery_exhausted(envelope: Any, *, using: str) -> bool:
    """Count a redelivery (the worker handling it before died); True once it came back too often.

    A message that kills its worker every time would otherwise loop forever.
    """
    event_id = envelope.get("event_id") if isinstance(envelope, dict) else None
    try:
        key = uuid.UUID(str(event_id))
    except ValueError:
        return False
    manager = Redelivery.objects.using(using)
    with transaction.atomic(using=using):
        record, created = manager.select_for_update().get_or_create(pk=key, defaults={"envelope": envelope})
        if not created:
            record.deliveries += 1
            record.dead = record.deliveries > settings.CONSUMER_MAX_REDELIVERIES
            record.last_seen_at = timezone.now()
            record.save(using=using)
    return record.dead


# --- Batches: the events of one message applied in one transaction ------------------------------------


@dataclass
class Incoming:
    """One event of a batch, checked and typed, with its handler."""

    envelope: dict[str, Any]
    event_id: uuid.UUID
    event: str
    handler: Handler
    payload: Any


Failed = list[tuple[Any, Exception]]  # envelopes that failed, each with its error; none of them applied


def run_batch(
    task: Any,
    envelopes: Any,
    *,
    using: str,
    handlers: Mapping[str, Handler],
) -> None:
    """Consume a batch: one transaction for all of it, its events' failures each set aside or retried alone.

    A batch that comes back (its worker died while applying it) is applied one event at a time instead,
    each counted as a redelivery when reached: an event that kills its worker every time ends as a dead
    letter on its own, and the events before it commit. Whatever could not be recorded at all (the
    database is away) leaves the whole message on the broker, as for one event.
    """
    refresh_connection(using)
    batch = envelopes if isinstance(envelopes, list) else [envelopes]
    try:
        if task.request.delivery_info.get("redelivered"):
            failed = consume_one_by_one(batch, using=using, handlers=handlers)
        else:
            failed = consume_batch(batch, using=using, handlers=handlers)
        for envelope, error in failed:
            retry_alone_or_set_aside(task, envelope, error=error, using=using)
    except (Retry, Reject):
        raise
    except Exception as exc:
        keep_on_broker({"event_id": f"a batch of {len(batch)}"}, error=exc, using=using)


def consume_batch(envelopes: list[Any], *, using: str, handlers: Mapping[str, Handler]) -> Failed:
    """Apply the batch in one transaction, without savepoints; if an event fails, apply it again with a
    savepoint around each event, so that only the failing ones are left out. Returns those."""
    failed: Failed = []
    incoming: dict[uuid.UUID, Incoming] = {}
    for envelope in envelopes:
        try:
            event = incoming_of(envelope, handlers=handlers)
        except MalformedEvent as exc:
            failed.append((envelope, exc))
            continue
        incoming.setdefault(event.event_id, event)  # the same event twice in one batch applies once
    events = list(incoming.values())
    if not events:
        return failed
    try:
        apply_batch(events, using=using, isolate=False)
    except Exception:  # which event failed is not known: the savepoints find out
        failed += apply_batch(events, using=using, isolate=True)
    return failed


def incoming_of(envelope: Any, *, handlers: Mapping[str, Handler]) -> Incoming:
    event_id, event, raw = validate_envelope(envelope)
    handler = handlers.get(event)
    if handler is None:
        raise MalformedEvent(f"no handler for event {event!r}")
    return Incoming(envelope, event_id, event, handler, typed_payload(event_id, event, raw))


def apply_batch(events: list[Incoming], *, using: str, isolate: bool) -> Failed:
    """One transaction: one inbox statement for the batch, then each new event's handler in order.

    ``isolate``: each handler in a savepoint of its own (its outbox rows written at once); a failing one
    is rolled back alone and its inbox row deleted (so that its retry or replay applies it), and the
    others commit.
    """
    failed: list[tuple[Incoming, Exception]] = []
    # Without savepoints the outbox rows the handlers publish go in with one INSERT at the end.
    together = nullcontext() if isolate else outbox_rows_together(using=using)
    with transaction.atomic(using=using), together:
        fresh = record_many_in_inbox(events, using=using)
        for event in events:
            try:
                apply_event(event, using=using, duplicate=event.event_id not in fresh, isolate=isolate)
            except Exception as exc:
                if not isolate:
                    raise
                failed.append((event, exc))
        if failed:
            InboxMessage.objects.using(using).filter(event_id__in=[event.event_id for event, _ in failed]).delete()
    return [(event.envelope, error) for event, error in failed]


def apply_event(event: Incoming, *, using: str, duplicate: bool, isolate: bool) -> None:
    token = current_envelope.set(event.envelope)
    try:
        with consuming(event.envelope, using=using) as consumption:
            consumption.duplicate = duplicate
            if duplicate:
                return
            with transaction.atomic(using=using) if isolate else nullcontext():
                try:
                    event.handler(event.payload)
                except (KeyError, TypeError, ValueError) as exc:
                    raise MalformedEvent(f"{event.event} {event.event_id}: bad payload: {exc!r}") from exc
    finally:
        current_envelope.reset(token)


def record_many_in_inbox(events: list[Incoming], *, using: str) -> set[uuid.UUID]:
    """Insert the batch's inbox rows in one statement; the ids that were not there before."""
    connection = connections[using]
    received_at = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(events))
    params: list[Any] = []
    for event in events:
        params += [event.event_id, event.event, event.envelope["correlation_id"], received_at]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {InboxMessage._meta.db_table} (event_id, event, correlation_id, received_at) "  # noqa: S608
            f"VALUES {rows} ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            params,
        )
        return {uuid.UUID(str(event_id)) for (event_id,) in cursor.fetchall()}


def consume_one_by_one(envelopes: list[Any], *, using: str, handlers: Mapping[str, Handler]) -> Failed:
    """A batch that came back: each event in a transaction of its own, counted as a redelivery when reached."""
    failed: Failed = []
    for envelope in envelopes:
        try:
            if redelivery_exhausted(envelope, using=using):
                dead_letter_record(envelope, error="redelivered too often (its worker died each time)", using=using)
                continue
            consume(envelope, using=using, handlers=handlers)
        except Exception as exc:
            failed.append((envelope, exc))
    return failed


def retry_alone_or_set_aside(task: Any, envelope: Any, *, error: Exception, using: str) -> None:
    """An event that failed in a batch: a transient error is retried as a message of its own (to the
    single-event consumer, which counts its retries and gives up as usual); anything else is a dead letter."""
    if isinstance(error, TRANSIENT_ERRORS):
        countdown = jittered_backoff(
            0, base=settings.CONSUMER_RETRY_BASE_SECONDS, cap=settings.CONSUMER_RETRY_CAP_SECONDS
        )
        queue = task.request.delivery_info.get("routing_key") or task.queue
        current_app.send_task(task_name(queue), args=[envelope], queue=queue, countdown=countdown, retries=1)
        logger.warning("%s: %s failed in a batch, retried alone: %r", using, envelope.get("event_id"), error)
    elif isinstance(error, MalformedEvent):
        dead_letter_record(envelope, error=str(error), using=using)
    else:
        dead_letter_record(envelope, error=f"unexpected error: {describe(error)}", using=using)
