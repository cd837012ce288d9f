from __future__ import annotations

from celery import shared_task

from .consume import refresh_connection
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
