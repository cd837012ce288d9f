"""Drive sagas that stopped moving to a terminal state, with compensation, and say what was done."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ticketing.concerts import services as concerts
from ticketing.concerts.models import LIVE_STATUSES, Reservation
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


def refunds_request_missing(*, lookback: timedelta = timedelta(days=1)) -> int:
    """Cancelled reservations whose successful payment was not refunded in time: ask again (idempotent).

    Only reservations cancelled within ``lookback`` are looked at, so the cost does not grow with history.
    """
    now = timezone.now()
    cancelled = {
        r.id: r
        for r in Reservation.objects.using("concerts")
        .exclude(status__in=LIVE_STATUSES)
        .filter(updated_at__gte=now - lookback, updated_at__lt=now - timedelta(seconds=RELAY_SLACK_SECONDS))
    }
    charged = dict(
        Payment.objects.using("payments")
        .filter(status=PaymentStatus.SUCCEEDED, reservation_id__in=list(cancelled))
        .values_list("reservation_id", "id")
    )
    count = 0
    for reservation in (cancelled[rid] for rid in charged):
        with transaction.atomic(using=concerts.DB):
            concerts.reservation_request_refund(
                reservation, reason=reservation.reason or "refund missing", payment_id=charged[reservation.id]
            )
        count += 1
    return count
