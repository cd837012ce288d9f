from __future__ import annotations

from celery import shared_task

from .services import expired_keys_delete


@shared_task(name="idempotency.expire", ignore_result=True)
def expire(*, using: str) -> int:
    """Beat: forget answers older than IDEMPOTENCY_KEY_TTL_SECONDS, batch after batch until caught up."""
    return expired_keys_delete(using=using)
