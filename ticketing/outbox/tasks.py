from __future__ import annotations

from typing import Any

from celery import shared_task

from ticketing.events.catalogue import CATALOGUE
from ticketing.events.schema import Consumer, Service, batch_task_name, queue_of, task_name

from .consume import CONSUMER_TASK_OPTIONS, refresh_connection, run_batch, run_consumer
from .relay import relay_pending
from .services import retention_sweep


@shared_task(name="outbox.relay", ignore_result=True, acks_late=False)
def relay(*, using: str) -> int:
    """Beat's safety net: publish whatever the relay process (or the fast path) left behind."""
    refresh_connection(using)
    return relay_pending(using=using)


@shared_task(name="outbox.retention", ignore_result=True)
def retention(*, using: str) -> int:
    """Beat: delete sent outbox rows and old inbox rows, a bounded batch at a time."""
    return retention_sweep(using=using)


def consumer_task(service: Service) -> Any:
    """The task that consumes the events of ``service``'s queue with the handlers of its Consumer."""
    queue = queue_of(service)

    @shared_task(name=task_name(queue), bind=True, queue=queue, **CONSUMER_TASK_OPTIONS)
    def handle_event(self: Any, envelope: Any) -> None:
        # A service without its Consumer (never the case once `manage.py check` passes) has no handler
        # for anything: every event becomes a dead letter saying so, none is lost.
        consumer = Consumer.registry.get(service.name)
        handlers, give_up = (consumer.handlers, consumer.give_up) if consumer else ({}, {})
        run_consumer(self, envelope, using=service.database, handlers=handlers, give_up=give_up)

    return handle_event


def batch_consumer_task(service: Service) -> Any:
    """The task that applies a batch of ``service``'s events (one message from the relay) in one transaction."""
    queue = queue_of(service)

    @shared_task(name=batch_task_name(queue), bind=True, queue=queue, **CONSUMER_TASK_OPTIONS)
    def handle_events(self: Any, envelopes: Any) -> None:
        consumer = Consumer.registry.get(service.name)
        run_batch(self, envelopes, using=service.database, handlers=consumer.handlers if consumer else {})

    return handle_events


CONSUMER_TASKS = {service.name: consumer_task(service) for service in CATALOGUE.consuming()}
BATCH_CONSUMER_TASKS = {service.name: batch_consumer_task(service) for service in CATALOGUE.consuming()}
