"""Drive sagas that stopped moving to a terminal state, with compensation, and say what was done."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ticketing.concerts import services as concerts
from ticketing.concerts.models import CANCELLED_STATUSES, Reservation
from ticketing.payments.models import Payment, PaymentStatus

from .invariants import RELAY_SLACK_SECONDS

logger = logging.getLogger(__name__)


def repair() -> list[str]:
    actions = []
    if expired := concerts.reservation_expire_holds(hold_seconds=settings.RESERVATION_HOLD_SECONDS):
        actions.append(f"cancelled {expired} reservations whose hold expired")
    if stuck := concerts.reservation_repair_stuck():
        actions.append(f"cancelled {stuck} reservations whose payment request was undeliverable")
    if refunds := refunds_request_missing():
        actions.append(f"asked again for the refund of {refunds} cancelled reservations still charged")
    for action in actions:
        logger.warning("saga repair: %s", action)
    return actions


REFUND_CURSOR_KEY = "audit:refund-check-cursor"


def refunds_request_missing(*, lookback: timedelta = timedelta(days=1), page: int = 500) -> int:
    """Cancelled reservations whose successful payment was not refunded in time: ask again (idempotent).

    Each run looks at one page of at most ``page`` reservations cancelled within ``lookback``, in the
    order of the index on (updated_at, id), from where the previous run stopped (a cursor in the
    cache); past the last one the next run starts over. So a run's work and its ``IN`` list stay
    bounded however many reservations were cancelled, and every recent one is looked at again and again.
    """
    now = timezone.now()
    window_start = now - lookback
    after = refund_cursor_load(window_start)
    cancelled = list(cancelled_after(after, until=now - timedelta(seconds=RELAY_SLACK_SECONDS))[:page])
    last = (cancelled[-1].updated_at, cancelled[-1].id) if len(cancelled) == page else None
    cache.set(REFUND_CURSOR_KEY, (last[0].isoformat(), last[1]) if last else None, timeout=None)
    charged = dict(
        Payment.objects.using("payments")
        .filter(status=PaymentStatus.SUCCEEDED, reservation_id__in=[r.id for r in cancelled])
        .values_list("reservation_id", "id")
    )
    for reservation in (r for r in cancelled if r.id in charged):
        with transaction.atomic(using=concerts.DB):
            concerts.reservation_request_refund(
                reservation, reason=reservation.reason or "refund missing", payment_id=charged[reservation.id]
            )
    return len(charged)


def cancelled_after(after: tuple[datetime, int], *, until: datetime) -> QuerySet[Reservation]:
    """Cancelled reservations after the cursor (updated_at, id) and before ``until``, in the index's order."""
    later = Q(updated_at__gt=after[0]) | Q(updated_at=after[0], id__gt=after[1])
    cancelled = Reservation.objects.using("concerts").filter(status__in=CANCELLED_STATUSES, updated_at__lt=until)
    return cancelled.filter(later).order_by("updated_at", "id")


def refund_cursor_load(window_start: datetime) -> tuple[datetime, int]:
    """Where the previous run stopped, or the start of the window (no cursor, or one older than it)."""
    stored = cache.get(REFUND_CURSOR_KEY)
    if stored is None:
        return window_start, 0
    at, reservation_id = datetime.fromisoformat(stored[0]), int(stored[1])
    return (at, reservation_id) if at >= window_start else (window_start, 0)
