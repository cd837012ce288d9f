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
    sales_open_at = models.DateTimeField(
        null=True, blank=True, help_text="When booking opens; empty: on sale now. Booking earlier is refused."
    )
    queue = models.BooleanField(
        default=False, help_text="Bookers need an admission from the waiting room (a queue kept in Redis)."
    )

    class Meta:
        ordering = ["starts_at", "id"]

    def __str__(self) -> str:
        return f"{self.concert} @ {self.venue} {self.starts_at:%Y-%m-%d %H:%M}"


class SeatStatus(models.TextChoices):
    AVAILABLE = "AVAILABLE"
    HELD = "HELD"
    SOLD = "SOLD"
    OFFERED = "OFFERED"  # held for one person of the waiting list; anyone else sees it HELD


PUBLIC_SEAT_STATUSES = [SeatStatus.AVAILABLE, SeatStatus.HELD, SeatStatus.SOLD]


def public_seat_status(status: str) -> str:
    """What everyone else may know: a seat offered to someone on the waiting list is just HELD."""
    return SeatStatus.HELD if status == SeatStatus.OFFERED else status


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

    @property
    def public_status(self) -> str:
        return public_seat_status(self.status)


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


class ReservationSeat(models.Model):
    """One seat of a reservation: a booking holds one to MAX_SEATS_PER_USER seats, all or nothing.

    ``live`` mirrors whether the reservation is PENDING or CONFIRMED, so that the database itself keeps
    the rule "at most one live reservation per seat" for every seat of every booking.
    """

    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="lines")
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="reservation_lines")
    performance = models.ForeignKey(Performance, on_delete=models.PROTECT, related_name="+")
    user_id = models.BigIntegerField(help_text="The reservation's user, so that live seats per user are counted here.")
    price = models.PositiveIntegerField(help_text="Whole won, the seat's price when booked.")
    live = models.BooleanField(default=True)

    class Meta:
        ordering = ["reservation_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["seat"], condition=Q(live=True), name="concerts_one_live_line_per_seat"),
            models.UniqueConstraint(fields=["reservation", "seat"], name="concerts_line_seat_once"),
        ]
        indexes = [
            models.Index(fields=["user_id", "performance"], condition=Q(live=True), name="concerts_line_live_user"),
        ]

    def __str__(self) -> str:
        return f"seat {self.seat_id} of reservation {self.reservation_id}"


class BookerLock(models.Model):
    """One row per (user, performance), locked by each booking of that user for that performance.

    Bookings of one user are thereby counted and written one at a time, so that concurrent requests
    cannot together pass the per-user seat limit.
    """

    user_id = models.BigIntegerField()
    performance = models.ForeignKey(Performance, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "performance"], name="concerts_booker_lock_once")]

    def __str__(self) -> str:
        return f"bookings of user {self.user_id} for performance {self.performance_id}"


# --- After the sale: tickets and the door ------------------------------------------------------------


class TicketStatus(models.TextChoices):
    VALID = "VALID"
    CHECKED_IN = "CHECKED_IN"
    VOID = "VOID"


class Ticket(models.Model):
    """One seat of a CONFIRMED reservation, issued when the saga confirms it; void once it is cancelled.

    Its code (ticket_codes) is signed, not stored: the QR code a door device reads.
    """

    reservation = models.ForeignKey(Reservation, on_delete=models.PROTECT, related_name="tickets")
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="tickets")
    performance = models.ForeignKey(Performance, on_delete=models.PROTECT, related_name="+")
    user_id = models.BigIntegerField(help_text="The reservation's user (an id in accounts).")
    status = models.CharField(max_length=12, choices=TicketStatus.choices, default=TicketStatus.VALID)
    issued_at = models.DateTimeField(auto_now_add=True)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["reservation_id", "id"]
        permissions = [("door", "Can check tickets in at the door")]
        constraints = [
            models.UniqueConstraint(fields=["reservation", "seat"], name="concerts_ticket_seat_once"),
            models.CheckConstraint(
                condition=Q(status="CHECKED_IN", checked_in_at__isnull=False)
                | (~Q(status="CHECKED_IN") & Q(checked_in_at__isnull=True)),
                name="concerts_ticket_checked_in_at",
            ),
        ]
        indexes = [models.Index(fields=["user_id", "performance"], name="concerts_ticket_user")]

    def __str__(self) -> str:
        return f"ticket {self.id} ({self.status})"


class CheckInOutcome(models.TextChoices):
    ADMITTED = "ADMITTED"
    ALREADY_CHECKED_IN = "ALREADY_CHECKED_IN"
    VOID = "VOID"


class CheckIn(models.Model):
    """Every scan of a genuine ticket at the door: the one that admitted it, and each one refused."""

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="check_ins")
    outcome = models.CharField(max_length=20, choices=CheckInOutcome.choices)
    at = models.DateTimeField()
    staff_user_id = models.BigIntegerField(help_text="Who scanned it (an id in accounts).")

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A ticket lets one person in, once: the database refuses a second admission.
            models.UniqueConstraint(
                fields=["ticket"], condition=Q(outcome="ADMITTED"), name="concerts_checkin_admitted_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} ticket {self.ticket_id} at {self.at:%Y-%m-%d %H:%M:%S}"


# --- After the sale: the waiting list ----------------------------------------------------------------


class WaitlistStatus(models.TextChoices):
    WAITING = "WAITING"
    OFFERED = "OFFERED"
    BOOKED = "BOOKED"
    LAPSED = "LAPSED"


class WaitlistEntry(models.Model):
    """A person's place in line for ``seats`` seats of one grade of a sold-out performance."""

    performance = models.ForeignKey(Performance, on_delete=models.CASCADE, related_name="waitlist")
    user_id = models.BigIntegerField(help_text="An id in accounts.")
    grade = models.CharField(max_length=16)
    seats = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=WaitlistStatus.choices, default=WaitlistStatus.WAITING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "waiting list entries"
        constraints = [
            models.UniqueConstraint(
                fields=["performance", "user_id", "grade"],
                condition=Q(status__in=["WAITING", "OFFERED"]),
                name="concerts_waitlist_one_place_per_grade",
            ),
            models.CheckConstraint(condition=Q(seats__gte=1), name="concerts_waitlist_seats_positive"),
        ]
        indexes = [
            models.Index(
                fields=["performance", "grade", "id"], condition=Q(status="WAITING"), name="concerts_waitlist_line"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.seats}x {self.grade} for user {self.user_id} ({self.status})"


class OfferStatus(models.TextChoices):
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    LAPSED = "LAPSED"


class WaitlistOffer(models.Model):
    """Freed seats held for one waiting-list entry until ``expires_at`` (never past the performance's start)."""

    entry = models.OneToOneField(WaitlistEntry, on_delete=models.PROTECT, related_name="offer")
    performance = models.ForeignKey(Performance, on_delete=models.PROTECT, related_name="+")
    user_id = models.BigIntegerField(help_text="The entry's user (an id in accounts).")
    status = models.CharField(max_length=10, choices=OfferStatus.choices, default=OfferStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    reservation = models.OneToOneField(
        Reservation, on_delete=models.PROTECT, null=True, blank=True, related_name="waitlist_offer"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status="OPEN"), name="concerts_offer_open_expiry"),
            models.Index(fields=["user_id", "id"], name="concerts_offer_user"),
        ]

    def __str__(self) -> str:
        return f"offer {self.id} to user {self.user_id} ({self.status})"


class OfferSeat(models.Model):
    """A seat of an offer; ``open`` while the offer is: the database holds a seat for one open offer at most."""

    offer = models.ForeignKey(WaitlistOffer, on_delete=models.CASCADE, related_name="lines")
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="offer_lines")
    open = models.BooleanField(default=True)

    class Meta:
        ordering = ["offer_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["seat"], condition=Q(open=True), name="concerts_one_open_offer_per_seat"),
        ]

    def __str__(self) -> str:
        return f"seat {self.seat_id} of offer {self.offer_id}"
