from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .services import expired_keys_delete


@shared_task(name="idempotency.expire", ignore_result=True)
def expire(*, using: str) -> int:
    """Beat: forget answers older than IDEMPOTENCY_KEY_TTL_SECONDS, a bounded batch at a time."""
    return expired_keys_delete(using=using, batch_size=settings.RETENTION_BATCH_SIZE)
