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

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from celery_app import app

Handler = Callable[[dict[str, Any]], None]


def task_name(queue: str, event: str) -> str:
    return f"{queue}.on_{event}"


def service_handlers() -> dict[str, tuple[str, Mapping[str, Handler]]]:
    """Each queue's database and event handlers: the same tables the project's consumers use."""
    from ticketing.concerts import services as concerts
    from ticketing.payments import services as payments

    return {"concerts": (concerts.DB, concerts.EVENT_HANDLERS), "payments": (payments.DB, payments.EVENT_HANDLERS)}


def peer_consumer(queue: str, event: str) -> None:
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

        using, handlers = service_handlers()[queue]
        token = current_envelope.set(envelope)  # the events it publishes join the saga
        try:
            with transaction.atomic(using=using):
                handlers[event](envelope["payload"])
        finally:
            current_envelope.reset(token)


for _event, _queues in settings.OUTBOX_EVENT_ROUTES.items():
    for _queue in _queues:
        peer_consumer(_queue, _event)


__all__ = ["app"]
