from django.contrib import admin

from ticketing.admin_base import ReadOnlyServiceModelAdmin

from .models import Payment, Wallet, WalletEntry


@admin.register(Wallet)
class WalletAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["id", "user_id", "balance", "created_at"]
    search_fields = ["=user_id", "=id"]


@admin.register(WalletEntry)
class WalletEntryAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["id", "wallet", "kind", "amount", "reservation_id", "created_at"]
    list_filter = ["kind", "created_at"]
    search_fields = ["=wallet__user_id", "=reservation_id"]
    list_select_related = ["wallet"]


@admin.register(Payment)
class PaymentAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["id", "reservation_id", "user_id", "amount", "status", "reason", "created_at"]
    list_filter = ["status", "reason", "created_at"]
    search_fields = ["=reservation_id", "=user_id", "=id"]
