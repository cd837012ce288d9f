"""Writes of the payments service: the wallet, its ledger, and the saga's charge step."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ticketing.events.catalogue import PaymentFail, PaymentRefunded, PaymentSuccess, Reason
from ticketing.outbox.publish import publish

from .gateways import gateway
from .ledger import DB, wallet_post
from .models import EntryKind, Payment, PaymentStatus, Wallet

logger = logging.getLogger(__name__)

# A payment's reason (and the payment-fail event's) is for users: one of Reason.PAYMENT_REFUSALS. The
# error behind a "payment error" goes to the logs (and to the dead letter where there is one).
MAX_CHARGE = 100_000_000


def wallet_open(*, user_id: int) -> Wallet:
    """The user's wallet, created if it does not exist yet (idempotent, safe under races)."""
    wallet = Wallet.objects.using(DB).filter(user_id=user_id).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic(using=DB):
            return Wallet.objects.using(DB).create(user_id=user_id)
    except IntegrityError:
        return Wallet.objects.using(DB).get(user_id=user_id)


def wallet_top_up(*, user_id: int, amount: int) -> Wallet:
    if not 1 <= amount <= MAX_CHARGE:
        raise ValueError(f"amount must be from 1 to {MAX_CHARGE}")
    wallet_open(user_id=user_id)
    with transaction.atomic(using=DB):
        wallet = Wallet.objects.using(DB).select_for_update().get(user_id=user_id)
        wallet_post(wallet, EntryKind.TOPUP, amount)
    return wallet


def payment_charge(
    *, reservation_id: int, user_id: int, amount: Any, hold_until: datetime | None = None
) -> Payment | None:
    """concert-reserve: charge the wallet and announce the outcome, in the consumer's transaction.

    A second request for a reservation already paid, refused or ended (reservation-canceled came first)
    is a no-op (returns None). A request at or past its hold's deadline is refused, "hold expired":
    concerts cannot confirm it any more, so no charge is made.
    """
    wallet = Wallet.objects.using(DB).select_for_update().filter(user_id=user_id).first()
    if Payment.objects.using(DB).filter(reservation_id=reservation_id).exists():
        return None
    if hold_until is not None and timezone.now() >= hold_until:
        return payment_refuse(reservation_id=reservation_id, user_id=user_id, amount=0, reason=Reason.HOLD_EXPIRED)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_CHARGE:
        return payment_refuse(reservation_id=reservation_id, user_id=user_id, amount=0, reason=Reason.AMOUNT_MISMATCH)
    if wallet is None:
        return payment_refuse(
            reservation_id=reservation_id, user_id=user_id, amount=amount, reason=Reason.WALLET_MISSING
        )
    if wallet.balance < amount:
        return payment_refuse(
            reservation_id=reservation_id, user_id=user_id, amount=amount, reason=Reason.INSUFFICIENT_BALANCE
        )
    gateway().charge(wallet=wallet, amount=amount, reservation_id=reservation_id)
    payment = Payment.objects.using(DB).create(
        reservation_id=reservation_id, user_id=user_id, amount=amount, status=PaymentStatus.SUCCEEDED
    )
    publish(PaymentSuccess(reservation_id=reservation_id, payment_id=payment.id), using=DB, aggregate_id=payment.id)
    return payment


def payment_void(*, reservation_id: int, user_id: int, reason: str) -> Payment | None:
    """reservation-canceled: the reservation ended unsold. If nothing was charged for it yet, record a
    FAILED payment of nothing (no event: the saga is over), so that a late or replayed concert-reserve is
    a no-op. A payment already made is left alone: its refund comes with payment-refund.

    Locks the user's wallet first, as a charge does, so the two never interleave.
    """
    Wallet.objects.using(DB).select_for_update().filter(user_id=user_id).first()
    if Payment.objects.using(DB).filter(reservation_id=reservation_id).exists():
        return None
    return Payment.objects.using(DB).create(
        reservation_id=reservation_id, user_id=user_id, amount=0, status=PaymentStatus.FAILED, reason=reason
    )


def payment_refuse(*, reservation_id: int, user_id: int, amount: int, reason: str) -> Payment:
    payment = Payment.objects.using(DB).create(
        reservation_id=reservation_id, user_id=user_id, amount=amount, status=PaymentStatus.FAILED, reason=reason
    )
    publish(PaymentFail(reservation_id=reservation_id, reason=reason), using=DB, aggregate_id=payment.id)
    return payment


def payment_refund(*, reservation_id: int, reason: str) -> Payment | None:
    """payment-refund: give a successful payment's money back. A repeat is a no-op (returns None)."""
    payment = Payment.objects.using(DB).select_for_update().filter(reservation_id=reservation_id).first()
    if payment is None or payment.status != PaymentStatus.SUCCEEDED:
        return None
    wallet = Wallet.objects.using(DB).select_for_update().get(user_id=payment.user_id)
    wallet_post(wallet, EntryKind.REFUND, payment.amount, reservation_id)
    payment.status = PaymentStatus.REFUNDED
    payment.reason = f"refunded: {reason}"[:200]
    payment.save(using=DB, update_fields=["status", "reason", "updated_at"])
    publish(
        PaymentRefunded(reservation_id=reservation_id, payment_id=payment.id, amount=payment.amount),
        using=DB,
        aggregate_id=payment.id,
    )
    return payment


def payment_give_up(*, reservation_id: int, user_id: int, reason: str) -> None:
    """concert-reserve whose charge kept failing on transient errors: fail it, so the saga compensates.

    ``reason`` is the error behind it, for the logs only; the user reads "payment error".
    """
    if Payment.objects.using(DB).filter(reservation_id=reservation_id).exists():
        return
    logger.error("payment for reservation %s failed: %s", reservation_id, reason)
    payment_refuse(reservation_id=reservation_id, user_id=user_id, amount=0, reason=Reason.PAYMENT_ERROR)
