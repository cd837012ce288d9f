"""The other ways to publish that ``bench.saga`` runs the same saga through (``OUTBOX_PUBLISH_BACKEND``).

Each takes the event ``publish()`` built (an unsaved outbox row) and the caller's database alias,
inside the caller's transaction, as ``ticketing.outbox.publish.store_in_outbox`` does.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from ticketing.outbox.models import OutboxMessage


def delay_after_commit(message: OutboxMessage, using: str) -> None:
    """The fast, unsafe baseline: no outbox; ``.delay()`` the consumer task once the commit is done.

    An event is lost when the process dies between the commit and the send, or the broker is away.
    (``send_task`` by name is what ``.delay()`` does for a task registered in another service.)
    """
    from celery import current_app

    envelope = message.envelope()

    def send() -> None:
        for queue in settings.OUTBOX_EVENT_ROUTES[message.event]:
            current_app.send_task(f"{queue}.handle_event", args=[envelope], queue=queue)

    transaction.on_commit(send, using=using)


def django_celery_outbox(message: OutboxMessage, using: str) -> None:
    """django-celery-outbox: its ``send_task`` writes a row to its own table in the caller's transaction.

    The package keeps its table in one database; ``bench.saga_settings`` routes it to the database of
    the transaction at hand, and runs one of its relays per service database.
    """
    from bench.saga_settings import dco_app, outbox_database

    with outbox_database(using):
        for queue in settings.OUTBOX_EVENT_ROUTES[message.event]:
            dco_app.send_task(f"{queue}.handle_event", args=[message.envelope()], queue=queue)
