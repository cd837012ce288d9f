from __future__ import annotations

from rest_framework import serializers

from ticketing.api import IdField

from ..models import Concert, Performance, Reservation, Seat


class PerformanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Performance
        fields = ["id", "starts_at", "venue"]


class ConcertSerializer(serializers.ModelSerializer):
    performances = PerformanceSerializer(many=True, read_only=True)

    class Meta:
        model = Concert
        fields = ["id", "title", "title_en", "artist", "description", "performances"]


class SeatSerializer(serializers.ModelSerializer):
    class Meta:
        model = Seat
        fields = ["id", "label", "grade", "price", "status"]


class ReservationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reservation
        fields = ["id", "seat_id", "amount", "status", "saga_step", "reason", "created_at"]


class ReservationCreateSerializer(serializers.Serializer):
    seat_id = IdField()
