"""The peers' own consumers (``--configs delay,dco``), as a Django team would write and run them.

One Celery task per event and queue (``<queue>.on_<event>``), taking the event as it travels; the task
runs the service's handler in one transaction and relies on the handler's own state checks for a
duplicate (no inbox table). Celery's defaults otherwise: the message is acknowledged when the task starts
(no ``acks_late``), a database error is retried with backoff, the worker runs the prefork pool with a
prefetch of four per process (``PEERS`` in saga.py). The booking view, the services and the saga are
the project's own: only how events travel and are consumed differs.

Workers of the peers run ``celery -A bench.peers worker``: this module is the project's Celery app with
these tasks added.
"""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError, transaction

from celery_app import app
from ticketing.events.catalogue import CATALOGUE
from ticketing.events.schema import Consumer, Service, decode, queue_of


def task_name(queue: str, event: str) -> str:
    return f"{queue}.on_{event}"


def peer_consumer(service: Service, event: str) -> None:
    queue = queue_of(service)

    @app.task(
        name=task_name(queue, event),
        queue=queue,
        ignore_result=True,
        acks_late=False,
        autoretry_for=(OperationalError, InterfaceError),
        retry_backoff=True,
        max_retries=5,
    )
    def consume(envelope: dict[str, Any]) -> None:
        from ticketing.outbox.publish import current_envelope

        # The service's own handler of the event (its handlers.py), given the typed payload.
        handler = Consumer.registry[service.name].handlers[event]
        payload = decode(CATALOGUE.payload_type(event), envelope["payload"])
        token = current_envelope.set(envelope)  # the events it publishes join the saga
        try:
            with transaction.atomic(using=service.database):
                handler(payload)
        finally:
            current_envelope.reset(token)


for _event, _payload in CATALOGUE.events.items():
    for _service in _payload.consumers:
        peer_consumer(_service, _event)


__all__ = ["app"]
