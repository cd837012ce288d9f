"""Publishing a batch of events as Celery task messages, with publisher confirms.

On RabbitMQ a batch is published on one channel in confirm mode and the confirms are awaited once for
the whole batch, instead of one round trip per message (what ``confirm_publish=True`` does). Each
process (and thread) keeps one connection. Other transports (the embedded filesystem one) have no
confirms; there each message goes through Celery's ``send_task``.
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
from kombu import Connection, Producer

CONFIRM_TIMEOUT_SECONDS = 10.0


class PublishError(RuntimeError):
    pass


class Outgoing:
    """One message to send: the envelope of an outbox row, to the consumer task of one queue."""

    __slots__ = ("envelope", "headers", "queue")

    def __init__(self, queue: str, envelope: dict[str, Any], headers: dict[str, str]) -> None:
        self.queue = queue
        self.envelope = envelope
        self.headers = headers


def publish_batch(messages: Sequence[Outgoing]) -> list[bool]:
    """Publish ``messages``; return, for each, whether the broker confirmed it."""
    if not current_app.conf.broker_url.startswith("amqp"):
        return [send_one(message) for message in messages]
    publisher = ConfirmingPublisher.for_this_thread()
    try:
        return publisher.publish(messages)
    except (OSError, PublishError, *publisher.connection_errors):
        publisher.close()  # a stale connection (broker restarted): one more try on a fresh one
        return ConfirmingPublisher.for_this_thread().publish(messages)


def send_one(message: Outgoing) -> bool:
    current_app.send_task(
        f"{message.queue}.handle_event", args=[message.envelope], queue=message.queue, headers=message.headers
    )
    return True


class ConfirmingPublisher:
    _local = threading.local()

    @classmethod
    def for_this_thread(cls) -> ConfirmingPublisher:
        publisher: ConfirmingPublisher | None = getattr(cls._local, "publisher", None)
        if publisher is None or publisher.pid != os.getpid() or not publisher.usable():
            publisher = cls._local.publisher = cls()
        return publisher

    def __init__(self) -> None:
        app = current_app
        options = {k: v for k, v in app.conf.broker_transport_options.items() if k != "confirm_publish"}
        self.pid = os.getpid()
        self.connection = Connection(app.conf.broker_url, transport_options=options, heartbeat=0)
        self.connection_errors = self.connection.connection_errors
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self.on_ack)
        self.channel.events["basic_nack"].add(self.on_nack)
        self.producer = Producer(self.channel, serializer="json")
        self.next_tag = 1
        self.first_unsettled = 1
        self.results: dict[int, bool] = {}
        self.declared: set[str] = set()

    def usable(self) -> bool:
        return bool(self.connection.connected and self.channel.is_open)

    def close(self) -> None:
        self._local.publisher = None
        with contextlib.suppress(Exception):  # closing a broken connection
            self.connection.release()

    def on_ack(self, tag: int, multiple: bool) -> None:
        self.settle(tag, multiple, ok=True)

    def on_nack(self, tag: int, multiple: bool) -> None:
        self.settle(tag, multiple, ok=False)

    def settle(self, tag: int, multiple: bool, *, ok: bool) -> None:
        # Confirms may arrive while the batch is still being sent; "multiple" covers every earlier tag.
        for settled in range(self.first_unsettled, tag + 1) if multiple else (tag,):
            self.results.setdefault(settled, ok)
        while self.first_unsettled in self.results:
            self.first_unsettled += 1

    def publish(self, messages: Sequence[Outgoing]) -> list[bool]:
        tags = [self.send(message) for message in messages]
        deadline = time.monotonic() + CONFIRM_TIMEOUT_SECONDS
        while tags and self.first_unsettled <= tags[-1]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(f"confirms did not come within {CONFIRM_TIMEOUT_SECONDS}s")
            self.connection.drain_events(timeout=remaining)
        return [self.results.pop(tag) for tag in tags]

    def send(self, message: Outgoing) -> int:
        amqp = current_app.amqp
        queue = amqp.queues[message.queue]
        task = amqp.as_task_v2(
            str(uuid.uuid4()),
            f"{message.queue}.handle_event",
            args=[message.envelope],
            # Celery would otherwise build a safe repr of the whole envelope for its logs: a third
            # of the relay's CPU. The event's name and id say enough.
            argsrepr=f"[{message.envelope['event']} {message.envelope['event_id']}]",
            kwargsrepr="{}",
        )
        self.producer.publish(
            task.body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers={**task.headers, **message.headers},
            delivery_mode=2,
            declare=[] if message.queue in self.declared else [queue],
            **task.properties,
        )
        self.declared.add(message.queue)
        tag = self.next_tag
        self.next_tag += 1
        return tag
