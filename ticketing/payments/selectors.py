"""Reads of the payments service."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Payment, Wallet, WalletEntry

DB = "payments"


def wallet_balance(*, user_id: int) -> int:
    wallet = Wallet.objects.using(DB).filter(user_id=user_id).first()
    return wallet.balance if wallet else 0


def payment_list(*, user_id: int) -> QuerySet[Payment]:
    return Payment.objects.using(DB).filter(user_id=user_id).order_by("-id")


def wallet_entries(*, user_id: int, limit: int = 100) -> QuerySet[WalletEntry]:
    """The ledger, newest first: top-ups, charges and refunds."""
    return WalletEntry.objects.using(DB).filter(wallet__user_id=user_id).order_by("-id")[:limit]


def payment_for_reservation(*, user_id: int, reservation_id: int) -> Payment | None:
    return Payment.objects.using(DB).filter(user_id=user_id, reservation_id=reservation_id).first()
