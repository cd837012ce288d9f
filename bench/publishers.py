"""The other ways to publish the harness runs the same saga through (``OUTBOX_PUBLISH_BACKEND``): each takes
the unsaved outbox row ``publish()`` built and the caller's alias, inside the caller's transaction, and
sends the event to the peers' own consumer task of each queue (``bench/peers.py``)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from bench.peers import task_name
from ticketing.outbox.models import OutboxMessage


def delay_after_commit(message: OutboxMessage, using: str) -> None:
    """The unsafe baseline: ``.delay()`` (``send_task`` by name) the consumer task once the commit is done.
    An event is lost when the process dies between the commit and the send, or the broker is away."""
    from celery import current_app

    envelope = message.envelope()

    def send() -> None:
        for queue in settings.OUTBOX_EVENT_ROUTES[message.event]:
            current_app.send_task(task_name(queue, message.event), args=[envelope], queue=queue)

    transaction.on_commit(send, using=using)


def django_celery_outbox(message: OutboxMessage, using: str) -> None:
    """django-celery-outbox: its ``send_task`` writes a row to its own table in the caller's transaction."""
    from bench.saga_settings import dco_app, outbox_database

    with outbox_database(using):
        for queue in settings.OUTBOX_EVENT_ROUTES[message.event]:
            dco_app.send_task(task_name(queue, message.event), args=[message.envelope()], queue=queue)
