from __future__ import annotations

from django.db import models
from django.db.models import Q


class Wallet(models.Model):
    user_id = models.BigIntegerField(unique=True, help_text="Id of the user in accounts (no foreign key).")
    balance = models.BigIntegerField(default=0, help_text="Whole won.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(balance__gte=0), name="payments_wallet_balance_non_negative")]

    def __str__(self) -> str:
        return f"wallet of user {self.user_id}"


class EntryKind(models.TextChoices):
    TOPUP = "TOPUP"
    CHARGE = "CHARGE"
    REFUND = "REFUND"


class WalletEntry(models.Model):
    """The ledger: a wallet's balance is always the sum of its entries (top-ups and refunds minus charges)."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=8, choices=EntryKind.choices)
    amount = models.BigIntegerField(help_text="Whole won, always positive; the kind gives the sign.")
    reservation_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "wallet entries"
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payments_entry_amount_positive")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class PaymentStatus(models.TextChoices):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


class Payment(models.Model):
    reservation_id = models.BigIntegerField(unique=True, help_text="One payment per reservation: a repeat is a no-op.")
    user_id = models.BigIntegerField(db_index=True)
    amount = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=PaymentStatus.choices)
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"payment {self.id} for reservation {self.reservation_id} ({self.status})"
