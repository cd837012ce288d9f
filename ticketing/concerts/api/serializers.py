from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from ticketing.api import IdField, StrictCharField, StrictIntegerField

from ..models import PUBLIC_SEAT_STATUSES, Concert, Performance, Reservation, Seat, Ticket, WaitlistOffer
from ..ticket_codes import ticket_code


class PerformanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Performance
        fields = ["id", "starts_at", "venue", "sales_open_at", "queue"]


class ConcertSerializer(serializers.ModelSerializer):
    performances = PerformanceSerializer(many=True, read_only=True)

    class Meta:
        model = Concert
        fields = ["id", "title", "title_en", "artist", "description", "performances"]


class SeatSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=PUBLIC_SEAT_STATUSES, source="public_status", read_only=True)

    class Meta:
        model = Seat
        fields = ["id", "label", "grade", "price", "status"]


class ReservationSerializer(serializers.ModelSerializer):
    seat_ids = serializers.SerializerMethodField(help_text="Every seat of the booking; seat_id is the first.")

    class Meta:
        model = Reservation
        fields = ["id", "seat_id", "seat_ids", "amount", "status", "saga_step", "reason", "created_at"]

    def get_seat_ids(self, reservation: Reservation) -> list[int]:
        return [line.seat_id for line in reservation.lines.all()]


class ReservationCreateSerializer(serializers.Serializer):
    seat_id = IdField(required=False, help_text="One seat (or give seat_ids).")
    seat_ids = serializers.ListField(
        child=IdField(),
        required=False,
        min_length=1,
        max_length=settings.MAX_SEATS_PER_USER,
        help_text="1 to MAX_SEATS_PER_USER distinct seats of one performance, held all or nothing.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "seat_id" not in attrs and "seat_ids" not in attrs:
            raise serializers.ValidationError({"seat_id": "This field is required (or seat_ids, a list of seats)."})
        if "seat_id" in attrs and "seat_ids" in attrs:
            raise serializers.ValidationError({"seat_ids": "Give either seat_id or seat_ids, not both."})
        seat_ids = attrs.get("seat_ids") or [attrs["seat_id"]]
        if len(set(seat_ids)) != len(seat_ids):
            raise serializers.ValidationError({"seat_ids": "Each seat may appear only once."})
        return {"seat_ids": seat_ids}


class QueueStatusSerializer(serializers.Serializer):
    position = serializers.IntegerField(
        allow_null=True, help_text="1 = next among those waiting; 0 = admitted; null = in the pre-queue (see opens_at)."
    )
    admitted = serializers.BooleanField()
    admitted_until = serializers.DateTimeField(allow_null=True, help_text="End of the admission (ISO), if admitted.")
    opens_at = serializers.DateTimeField(
        allow_null=True, help_text="Sales opening; the pre-queue is shuffled then, once."
    )
    poll_after_seconds = serializers.FloatField(
        help_text="When to ask again (longer further back). Asking later never costs the place."
    )
    ticket = serializers.CharField(
        help_text="Signed queue ticket: send it back as X-Queue-Ticket (or keep the cookie) and polls cost "
        "no database query and usually no Redis round trip."
    )


class TicketSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="seat.label", help_text="The seat's label.")  # type: ignore[assignment]
    code = serializers.SerializerMethodField(help_text="What the ticket's QR code encodes: a signed token.")

    class Meta:
        model = Ticket
        fields = ["id", "seat_id", "label", "code", "status"]

    def get_code(self, ticket: Ticket) -> str:
        return ticket_code(ticket_id=ticket.id, performance_id=ticket.performance_id, label=ticket.seat.label)


class WaitlistJoinSerializer(serializers.Serializer):
    grade = StrictCharField(max_length=16, help_text="The seat grade to wait for (VIP, R, S, ...).")
    seats = StrictIntegerField(min_value=1, help_text="1 to MAX_SEATS_PER_USER seats, offered together.")

    def validate_seats(self, value: int) -> int:
        # Read per request, not at import: the limit is a setting.
        limit = settings.MAX_SEATS_PER_USER
        if value > limit:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {limit}.")
        return value


class WaitlistPlaceSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="1 = next in line for this grade; 0 = holding an offer.")
    grade = serializers.CharField(source="entry.grade")
    seats = serializers.IntegerField(source="entry.seats")
    status = serializers.CharField(source="entry.status", help_text="WAITING or OFFERED.")


class WaitlistOfferSerializer(serializers.ModelSerializer):
    grade = serializers.CharField(source="entry.grade")
    seat_ids = serializers.SerializerMethodField(help_text="The seats held for you.")
    labels = serializers.SerializerMethodField(help_text="Their labels.")

    class Meta:
        model = WaitlistOffer
        fields = ["id", "performance_id", "grade", "seat_ids", "labels", "status", "expires_at", "reservation_id"]

    def get_seat_ids(self, offer: WaitlistOffer) -> list[int]:
        return [line.seat_id for line in offer.lines.all()]

    def get_labels(self, offer: WaitlistOffer) -> list[str]:
        return [line.seat.label for line in offer.lines.all()]
