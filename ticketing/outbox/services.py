"""Operations on the outbox app's own tables: dead letters, retention."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from ticketing.events.schema import task_name
from ticketing.retention import delete_in_batches

from .models import DeadLetter, InboxMessage, OutboxMessage, OutboxState, Redelivery

logger = logging.getLogger(__name__)


def dead_letter_record(envelope: Any, *, error: str, using: str, attempts: int = 1) -> None:
    """Set a message aside, visibly, instead of dropping it."""
    envelope = envelope if isinstance(envelope, dict) else {"raw": repr(envelope)}
    try:
        event_id = uuid.UUID(str(envelope.get("event_id")))
    except ValueError:
        event_id = uuid.uuid4()  # not even an id: keep it under one of its own
    logger.error("%s: dead letter %s %s: %s", using, envelope.get("event"), event_id, error)
    DeadLetter.objects.using(using).update_or_create(
        event_id=event_id,
        defaults={
            "event": str(envelope.get("event", ""))[:64],
            "correlation_id": str(envelope.get("correlation_id", ""))[:64],
            "envelope": envelope,
            "error": error[:4000],
            "attempts": attempts,
            "replayed_at": None,
        },
    )


def dead_letters_replay(*, using: str, event_ids: list[uuid.UUID]) -> int:
    """Send dead letters back to their consumer (after a fix); the inbox keeps the effect exactly-once."""
    service = {alias: name for name, alias in settings.SERVICE_DATABASES.items()}[using]
    letters = list(DeadLetter.objects.using(using).filter(event_id__in=event_ids))
    for letter in letters:
        current_app.send_task(task_name(service), args=[letter.envelope], queue=service)
    Redelivery.objects.using(using).filter(event_id__in=event_ids).delete()
    DeadLetter.objects.using(using).filter(event_id__in=event_ids).update(replayed_at=timezone.now())
    return len(letters)


def expired_rows(*, using: str) -> dict[str, QuerySet[Any]]:
    """What retention deletes, each on an index of its own.

    Sent outbox rows, inbox rows and redelivery counts after RETENTION_SECONDS: an inbox row outlives
    any redelivery by far (days against seconds), and past that the handlers' own state checks still
    make a very late duplicate a no-op. Dead outbox rows, dead letters and dead redelivery records
    after the longer DEAD_RETENTION_SECONDS: they wait for an operator, who sees them in the admin.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.RETENTION_SECONDS)
    dead_cutoff = now - timedelta(seconds=settings.DEAD_RETENTION_SECONDS)
    return {
        "sent outbox rows": OutboxMessage.objects.using(using).filter(state=OutboxState.SENT, sent_at__lt=cutoff),
        "inbox rows": InboxMessage.objects.using(using).filter(received_at__lt=cutoff),
        "redelivery counts": Redelivery.objects.using(using).filter(dead=False, last_seen_at__lt=cutoff),
        "dead outbox rows": OutboxMessage.objects.using(using).filter(
            state=OutboxState.DEAD, created_at__lt=dead_cutoff
        ),
        "dead letters": DeadLetter.objects.using(using).filter(created_at__lt=dead_cutoff),
        "dead redelivery records": Redelivery.objects.using(using).filter(dead=True, last_seen_at__lt=dead_cutoff),
    }


def retention_sweep(*, using: str, batch_size: int | None = None) -> int:
    """Delete expired rows (see expired_rows) batch after batch until caught up, so the tables stay small."""
    deleted = 0
    for what, queryset in expired_rows(using=using).items():
        count = delete_in_batches(
            queryset,
            using=using,
            batch_size=batch_size or settings.RETENTION_BATCH_SIZE,
            max_batches=settings.RETENTION_MAX_BATCHES,
        )
        if count and what.startswith("dead"):
            logger.warning("%s: retention deleted %d %s older than DEAD_RETENTION_SECONDS", using, count, what)
        deleted += count
    return deleted
