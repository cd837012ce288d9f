"""The wallet's ledger: the one way money moves, under the services and the gateway that both post to it."""

from __future__ import annotations

from .models import EntryKind, Wallet, WalletEntry

DB = "payments"


def wallet_post(wallet: Wallet, kind: str, amount: int, reservation_id: int | None = None) -> None:
    """Write one ledger entry and move the balance with it (the wallet row is locked by the caller)."""
    wallet.balance += -amount if kind == EntryKind.CHARGE else amount
    wallet.save(using=DB, update_fields=["balance"])
    WalletEntry.objects.using(DB).create(wallet=wallet, kind=kind, amount=amount, reservation_id=reservation_id)
