"""Operations on the outbox app's own tables: dead letters, retention."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

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
        current_app.send_task(f"{service}.handle_event", args=[letter.envelope], queue=service)
    Redelivery.objects.using(using).filter(event_id__in=event_ids).delete()
    DeadLetter.objects.using(using).filter(event_id__in=event_ids).update(replayed_at=timezone.now())
    return len(letters)


def retention_sweep(*, using: str, batch_size: int | None = None) -> int:
    """Delete sent outbox rows and old inbox rows in bounded batches, so the tables stay small.

    An inbox row outlives any redelivery by far (days against seconds); past that, the handlers' own
    state checks still make a very late duplicate a no-op.
    """
    batch = batch_size or settings.RETENTION_BATCH_SIZE
    cutoff = timezone.now() - timedelta(seconds=settings.RETENTION_SECONDS)
    deleted = 0
    for queryset in (
        OutboxMessage.objects.using(using).filter(state=OutboxState.SENT, sent_at__lt=cutoff),
        InboxMessage.objects.using(using).filter(received_at__lt=cutoff),
        Redelivery.objects.using(using).filter(dead=False, last_seen_at__lt=cutoff),
    ):
        # Batch after batch until caught up: a sweep a minute must keep pace with the event rate
        # (one batch would cap retention at RETENTION_BATCH_SIZE rows a minute).
        for _ in range(settings.RETENTION_MAX_BATCHES):
            pks = list(queryset.values_list("pk", flat=True)[:batch])
            with transaction.atomic(using=using):
                deleted += queryset.model.objects.using(using).filter(pk__in=pks).delete()[0]
            if len(pks) < batch:
                break
    return deleted
