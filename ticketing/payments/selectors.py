"""Reads of the payments service."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Payment, Wallet

DB = "payments"


def wallet_balance(*, user_id: int) -> int:
    wallet = Wallet.objects.using(DB).filter(user_id=user_id).first()
    return wallet.balance if wallet else 0


def payment_list(*, user_id: int) -> QuerySet[Payment]:
    return Payment.objects.using(DB).filter(user_id=user_id).order_by("-id")
