from __future__ import annotations

from django.db import models
from django.db.models import Q


class Concert(models.Model):
    title = models.CharField(max_length=200)
    title_en = models.CharField(max_length=200, blank=True, default="")
    artist = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title


class Performance(models.Model):
    concert = models.ForeignKey(Concert, on_delete=models.CASCADE, related_name="performances")
    starts_at = models.DateTimeField()
    venue = models.CharField(max_length=200)

    class Meta:
        ordering = ["starts_at", "id"]

    def __str__(self) -> str:
        return f"{self.concert} @ {self.venue} {self.starts_at:%Y-%m-%d %H:%M}"


class SeatStatus(models.TextChoices):
    AVAILABLE = "AVAILABLE"
    HELD = "HELD"
    SOLD = "SOLD"


class Seat(models.Model):
    performance = models.ForeignKey(Performance, on_delete=models.CASCADE, related_name="seats")
    label = models.CharField(max_length=16)
    grade = models.CharField(max_length=16)
    price = models.PositiveIntegerField(help_text="Whole won.")
    status = models.CharField(max_length=10, choices=SeatStatus.choices, default=SeatStatus.AVAILABLE)

    class Meta:
        ordering = ["performance_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["performance", "label"], name="concerts_seat_label_unique"),
            models.CheckConstraint(condition=Q(price__gt=0), name="concerts_seat_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.grade})"


class ReservationStatus(models.TextChoices):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    SYSTEM_CANCELED = "SYSTEM_CANCELED"
    CANCELED = "CANCELED"


class SagaStep(models.TextChoices):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    SUCCESS_PAYMENT = "SUCCESS_PAYMENT"
    SYSTEM_CANCEL_PAYMENT = "SYSTEM_CANCEL_PAYMENT"
    USER_CANCEL_PAYMENT = "USER_CANCEL_PAYMENT"


LIVE_STATUSES = (ReservationStatus.PENDING, ReservationStatus.CONFIRMED)
CANCELLED_STATUSES = (ReservationStatus.SYSTEM_CANCELED, ReservationStatus.CANCELED)


class Reservation(models.Model):
    user_id = models.BigIntegerField(db_index=True, help_text="Id of the user in accounts (no foreign key).")
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="reservations")
    amount = models.PositiveIntegerField(help_text="Whole won, the seat's price when booked.")
    status = models.CharField(max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.PENDING)
    saga_step = models.CharField(max_length=24, choices=SagaStep.choices, default=SagaStep.PENDING_PAYMENT)
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A6.1 in the database itself: at most one live reservation per seat.
            models.UniqueConstraint(
                fields=["seat"],
                condition=Q(status__in=["PENDING", "CONFIRMED"]),
                name="concerts_one_live_reservation_per_seat",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="concerts_res_status_created"),
            # The repair walks recently cancelled reservations in this order, a bounded page a run.
            models.Index(
                fields=["updated_at", "id"],
                name="concerts_res_cancelled_upd",
                condition=Q(status__in=["SYSTEM_CANCELED", "CANCELED"]),
            ),
        ]

    def __str__(self) -> str:
        return f"reservation {self.id} ({self.status})"
