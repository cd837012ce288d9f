from __future__ import annotations

from rest_framework import serializers

from ticketing.api import StrictIntegerField

from ..models import Payment
from ..services import MAX_CHARGE


class WalletSerializer(serializers.Serializer):
    balance = serializers.IntegerField(read_only=True)


class ChargeSerializer(serializers.Serializer):
    amount = StrictIntegerField(min_value=1, max_value=MAX_CHARGE)


class PaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = ["id", "reservation_id", "amount", "status", "reason", "created_at"]
