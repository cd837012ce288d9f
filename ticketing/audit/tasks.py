from __future__ import annotations

from celery import shared_task

from .repair import repair as repair_sagas


@shared_task(name="audit.repair", ignore_result=True)
def repair() -> list[str]:
    """Beat: the stuck-saga repair of ``audit_sagas --repair``."""
    return repair_sagas()
