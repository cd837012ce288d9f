"""The Celery application: one queue per service, JSON only, late acks, a dead-letter exchange."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")

# A RabbitMQ cluster replicates quorum queues across its nodes; the type is fixed at first declaration.
QUEUE_TYPE = {"x-queue-type": "quorum"} if os.environ.get("RABBITMQ_QUEUE_TYPE") == "quorum" else {}
# A message a consumer rejects for good (it came back too often) goes here on RabbitMQ, besides the
# dead-letter row the consumer writes; a poison message can never loop forever.
DEAD_LETTERS = Queue("dead-letters", Exchange("dead-letters", type="fanout", durable=True), durable=True)

app = Celery("ticketing")
app.config_from_object("django.conf:settings", namespace="CELERY")


def service_queues() -> list[Queue]:
    """One queue per service of the catalogue (imported here, not above: importing ``ticketing`` imports
    this module's ``app``, which must exist by then)."""
    from ticketing.events.catalogue import CATALOGUE
    from ticketing.events.schema import queue_of

    return [
        Queue(
            name,
            Exchange(name, type="direct", durable=True),
            routing_key=name,
            durable=True,
            queue_arguments={"x-dead-letter-exchange": DEAD_LETTERS.exchange.name, **QUEUE_TYPE},
        )
        for name in map(queue_of, CATALOGUE.services)
    ]


app.conf.task_queues = service_queues()
app.autodiscover_tasks()


@worker_ready.connect
def declare_dead_letters(sender: Any, **kwargs: Any) -> None:
    if app.conf.broker_url.startswith("amqp"):
        with app.connection_for_write() as connection:
            DEAD_LETTERS.bind(connection.default_channel).declare()


@worker_process_shutdown.connect
def forget_live_gauges(pid: int | None = None, **kwargs: Any) -> None:
    # A pool child that exits leaves its metric files behind; its live gauges must not count any more.
    from ticketing.observability.metrics import mark_process_dead

    mark_process_dead(pid)
