from __future__ import annotations

from celery import shared_task

from .services import refresh_tokens_expired_delete


@shared_task(name="accounts.tokens_expire", ignore_result=True)
def tokens_expire() -> int:
    """Beat: forget expired refresh tokens, batch after batch until caught up."""
    return refresh_tokens_expired_delete()
