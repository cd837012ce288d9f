"""Publishing a batch of events as Celery task messages, with publisher confirms.

On RabbitMQ a batch is published on one channel in confirm mode and the confirms are awaited once for
the whole batch, instead of one round trip per message (what ``confirm_publish=True`` does). Each
process (and thread) keeps one connection. Every message is ``mandatory``: one that no queue would
receive comes back (basic.return) and counts as refused, instead of being confirmed and dropped.
On Redis (the broker of `make run`) there are no confirms: each message goes through Celery's
``send_task``, which returns once Redis has the message (on disk, with appendfsync always).

Two kinds of failure are kept apart, because the relay treats them differently: the broker refused a
message (nacked or returned it: the message's own failure, returned as its reason), or the broker could
not be reached or did not answer in time (``BrokerUnavailable``: nothing to do with the messages).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import current_app
from django.conf import settings
from kombu import Connection, Producer

from ticketing.events.schema import batch_task_name, task_name

# One try on the open connection, one more on a fresh one (it may have gone stale under a broker restart).
PUBLISH_TRIES = 2


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached, or did not confirm in time: the messages may or may not be there."""


class Outgoing:
    """One message to send: the envelope of an outbox row, to the consumer task of one queue; or, with
    ``batch``, the envelopes of several rows to the queue's batch consumer task (one message)."""

    __slots__ = ("batch", "envelope", "headers", "queue")

    def __init__(
        self,
        queue: str,
        envelope: dict[str, Any],
        headers: dict[str, str],
        *,
        batch: list[dict[str, Any]] | None = None,
    ) -> None:
        self.queue = queue
        self.envelope = envelope
        self.headers = headers
        self.batch = batch

    def task(self) -> tuple[str, list[Any], str]:
        """The task's name, its arguments and their short repr for Celery's logs."""
        if self.batch is not None:
            return batch_task_name(self.queue), [self.batch], f"[{len(self.batch)} events]"
        # Celery would otherwise build a safe repr of the whole envelope for its logs: a third of the
        # relay's CPU. The event's name and id say enough.
        return task_name(self.queue), [self.envelope], f"[{self.envelope['event']} {self.envelope['event_id']}]"


def worst_publish_seconds() -> float:
    """The longest a ``publish_batch`` may take without a deadline: every try connects and waits for confirms."""
    return PUBLISH_TRIES * (settings.OUTBOX_CONNECT_TIMEOUT_SECONDS + settings.OUTBOX_CONFIRM_TIMEOUT_SECONDS)


def publish_batch(messages: Sequence[Outgoing], *, deadline: float | None = None) -> list[str | None]:
    """Publish ``messages``; for each, None if the broker confirmed it, else why the broker refused it.

    ``deadline`` (``time.monotonic()``) bounds the whole call, retry included. Raises
    ``BrokerUnavailable`` when the broker could not be reached or did not confirm by then.
    """
    if not current_app.conf.broker_url.startswith("amqp"):
        return send_each(messages)
    deadline = deadline if deadline is not None else time.monotonic() + worst_publish_seconds()
    error: Exception | None = None
    for _ in range(PUBLISH_TRIES):
        if time.monotonic() >= deadline:
            break
        try:
            publisher = ConfirmingPublisher.for_this_thread(deadline=deadline)
            return publisher.publish(messages, deadline=deadline)
        except Exception as exc:  # socket, AMQP connection or channel errors, late confirms: start afresh
            error = exc
        ConfirmingPublisher.discard_for_this_thread()
    raise BrokerUnavailable(f"publishing {len(messages)} messages failed: {error!r}") from error


def send_each(messages: Sequence[Outgoing]) -> list[str | None]:
    try:
        for message in messages:
            name, args, _ = message.task()
            current_app.send_task(name, args=args, queue=message.queue, headers=message.headers)
    except Exception as exc:  # the transport itself failed: nothing says which message is at fault
        raise BrokerUnavailable(repr(exc)) from exc
    return [None] * len(messages)


class ConfirmingPublisher:
    _local = threading.local()

    @classmethod
    def for_this_thread(cls, *, deadline: float) -> ConfirmingPublisher:
        publisher: ConfirmingPublisher | None = getattr(cls._local, "publisher", None)
        if publisher is None or publisher.pid != os.getpid() or not publisher.usable():
            if publisher is not None:
                publisher.close()
            publisher = cls._local.publisher = cls(deadline=deadline)
        return publisher

    @classmethod
    def discard_for_this_thread(cls) -> None:
        publisher: ConfirmingPublisher | None = getattr(cls._local, "publisher", None)
        if publisher is not None:
            publisher.close()

    def __init__(self, *, deadline: float) -> None:
        app = current_app
        options = {k: v for k, v in app.conf.broker_transport_options.items() if k != "confirm_publish"}
        connect_timeout = max(0.1, min(settings.OUTBOX_CONNECT_TIMEOUT_SECONDS, deadline - time.monotonic()))
        self.pid = os.getpid()
        self.connection = Connection(
            app.conf.broker_url, transport_options=options, heartbeat=0, connect_timeout=connect_timeout
        )
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self.on_ack)
        self.channel.events["basic_nack"].add(self.on_nack)
        self.channel.events["basic_return"].add(self.on_return)
        self.producer = Producer(self.channel, serializer="json")
        self.next_tag = 1
        self.first_unsettled = 1
        self.results: dict[int, bool] = {}
        self.tags_by_task_id: dict[str, int] = {}
        self.returned: dict[int, str] = {}
        self.declared: set[str] = set()

    def usable(self) -> bool:
        return bool(self.connection.connected and self.channel.is_open)

    def close(self) -> None:
        if getattr(self._local, "publisher", None) is self:
            self._local.publisher = None
        # Drop the socket without AMQP's close handshake: on a broken or slow broker that would wait.
        with contextlib.suppress(Exception):
            self.connection.collect()

    def on_ack(self, tag: int, multiple: bool) -> None:
        self.settle(tag, multiple, ok=True)

    def on_nack(self, tag: int, multiple: bool) -> None:
        self.settle(tag, multiple, ok=False)

    def on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        # A returned message is confirmed (acked) right after its return; the return says it reached no queue.
        tag = self.tags_by_task_id.get(message.properties.get("correlation_id", ""))
        if tag is not None:
            self.returned[tag] = f"returned by the broker ({exc}): no queue bound for {exchange!r}/{routing_key!r}"
            self.declared.clear()  # a queue was deleted under us: declare again before the next publish

    def settle(self, tag: int, multiple: bool, *, ok: bool) -> None:
        # Confirms may arrive while the batch is still being sent; "multiple" covers every earlier tag.
        for settled in range(self.first_unsettled, tag + 1) if multiple else (tag,):
            self.results.setdefault(settled, ok)
        while self.first_unsettled in self.results:
            self.first_unsettled += 1

    def publish(self, messages: Sequence[Outgoing], *, deadline: float) -> list[str | None]:
        tags = [self.send(message) for message in messages]
        while tags and self.first_unsettled <= tags[-1]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(f"confirms of {len(tags)} messages did not come in time")
            with contextlib.suppress(TimeoutError):  # socket.timeout: the loop checks the deadline
                self.connection.drain_events(timeout=remaining)
        outcome = [self.outcome(tag) for tag in tags]
        self.tags_by_task_id.clear()
        return outcome

    def outcome(self, tag: int) -> str | None:
        confirmed = self.results.pop(tag)
        returned = self.returned.pop(tag, None)
        return returned or (None if confirmed else "nacked by the broker")

    def send(self, message: Outgoing) -> int:
        amqp = current_app.amqp
        queue = amqp.queues[message.queue]
        if message.queue not in self.declared:
            queue.bind(self.channel).declare()
            self.declared.add(message.queue)
        task_id = str(uuid.uuid4())
        name, args, argsrepr = message.task()
        task = amqp.as_task_v2(task_id, name, args=args, argsrepr=argsrepr, kwargsrepr="{}")
        self.producer.publish(
            task.body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers={**task.headers, **message.headers},
            delivery_mode=2,
            declare=[],
            mandatory=True,
            **task.properties,
        )
        tag = self.next_tag
        self.next_tag += 1
        self.tags_by_task_id[task_id] = tag
        return tag
