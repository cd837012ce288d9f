"""Reads of the concerts service."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import CharField, Count, Prefetch, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from ticketing.events.catalogue import ConcertReserve, PaymentFail, PaymentRefunded, PaymentSuccess
from ticketing.observability.gauges import Sample
from ticketing.outbox.selectors import dead_aggregate_ids, saga_moments

from . import waiting_room
from .models import (
    Concert,
    OfferSeat,
    OfferStatus,
    Performance,
    Reservation,
    ReservationSeat,
    ReservationStatus,
    Seat,
    SeatStatus,
    Ticket,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
    public_seat_status,
)

DB = "concerts"
logger = logging.getLogger(__name__)


def concert_list() -> QuerySet[Concert]:
    performances = Performance.objects.using(DB).order_by("starts_at", "id")
    return Concert.objects.using(DB).prefetch_related(Prefetch("performances", queryset=performances))


def concert_get(*, concert_id: int) -> Concert | None:
    return concert_list().filter(pk=concert_id).first()


def performance_seats(*, performance_id: int) -> QuerySet[Seat] | None:
    if not Performance.objects.using(DB).filter(pk=performance_id).exists():
        return None
    return Seat.objects.using(DB).filter(performance_id=performance_id).order_by("id")


def reservation_list(*, user_id: int) -> QuerySet[Reservation]:
    lines = ReservationSeat.objects.using(DB).select_related("seat").order_by("id")  # seats named on pages
    return (
        Reservation.objects.using(DB)
        .filter(user_id=user_id)
        .prefetch_related(Prefetch("lines", queryset=lines))
        .order_by("-id")
    )


def reservation_get(*, user_id: int, reservation_id: int) -> Reservation | None:
    return reservation_list(user_id=user_id).filter(pk=reservation_id).first()


@dataclass(frozen=True)
class SagaSteps:
    """What concerts knows of a booking's saga from its own rows: when it asked payments (its
    concert-reserve went to the broker) and when each of payments' answers reached it."""

    requested_at: datetime | None = None
    paid_at: datetime | None = None
    refused_at: datetime | None = None
    refunded_at: datetime | None = None


def reservation_saga_steps(*, reservation_id: int) -> SagaSteps:
    """The concerts database only (its outbox and inbox): the booking page asks this every few seconds."""
    moments = saga_moments(
        correlation_id=str(reservation_id),
        using=DB,
        sent=ConcertReserve.name,
        consumed=(PaymentSuccess.name, PaymentFail.name, PaymentRefunded.name),
    )
    return SagaSteps(
        requested_at=moments.get("sent"),
        paid_at=moments.get(PaymentSuccess.name),
        refused_at=moments.get(PaymentFail.name),
        refunded_at=moments.get(PaymentRefunded.name),
    )


def reservation_tickets(*, user_id: int, reservation_id: int) -> QuerySet[Ticket] | None:
    """The tickets of the user's reservation (none before it is CONFIRMED); None if it is not theirs."""
    if not Reservation.objects.using(DB).filter(pk=reservation_id, user_id=user_id).exists():
        return None
    tickets = Ticket.objects.using(DB).filter(reservation_id=reservation_id)
    return tickets.select_related("seat", "performance__concert").order_by("id")


def waitlist_offers(*, user_id: int, open_only: bool = False) -> QuerySet[WaitlistOffer]:
    """The user's offers from waiting lists, newest first, with their seats and performance."""
    lines = OfferSeat.objects.using(DB).select_related("seat").order_by("seat_id")
    offers = WaitlistOffer.objects.using(DB).filter(user_id=user_id)
    if open_only:
        offers = offers.filter(status=OfferStatus.OPEN, expires_at__gt=timezone.now())
    return (
        offers.select_related("entry", "performance__concert")
        .prefetch_related(Prefetch("lines", queryset=lines))
        .order_by("-id")
    )


def waitlist_entries(*, user_id: int) -> QuerySet[WaitlistEntry]:
    """The user's places in waiting lists (still waiting) of performances not yet started."""
    waiting = WaitlistEntry.objects.using(DB).filter(user_id=user_id, status=WaitlistStatus.WAITING)
    return waiting.filter(performance__starts_at__gt=timezone.now()).select_related("performance__concert")


def seats_left_by_grade(*, performance_ids: list[int]) -> dict[int, dict[str, int]]:
    """Available seats of each performance, per grade, in one query."""
    rows = (
        Seat.objects.using(DB)
        .filter(performance_id__in=performance_ids, status=SeatStatus.AVAILABLE)
        .values_list("performance_id", "grade")
        .annotate(left=Count("id"))
        .order_by()
    )
    left: dict[int, dict[str, int]] = {pid: {} for pid in performance_ids}
    for performance_id, grade, count in rows:
        left[performance_id][grade] = count
    return left


def performance_get(*, performance_id: int) -> Performance | None:
    return Performance.objects.using(DB).select_related("concert").filter(pk=performance_id).first()


def seat_statuses(*, performance_id: int) -> dict[str, list[int]]:
    """The ids of a performance's seats that are not available, by status: what a seat map needs to stay current."""
    taken: dict[str, list[int]] = {SeatStatus.HELD: [], SeatStatus.SOLD: []}
    rows = Seat.objects.using(DB).filter(performance_id=performance_id).exclude(status=SeatStatus.AVAILABLE)
    for seat_id, status in rows.order_by("id").values_list("id", "status"):
        taken[public_seat_status(status)].append(seat_id)
    return taken


# --- What the periodic jobs look at: each a bounded page, on an index, whatever the history ----------


def reservations_past_hold(*, hold_seconds: int) -> QuerySet[Reservation]:
    """PENDING reservations older than the hold, oldest first (the index on status and created_at)."""
    deadline = timezone.now() - timedelta(seconds=hold_seconds)
    pending = Reservation.objects.using(DB).filter(status=ReservationStatus.PENDING, created_at__lt=deadline)
    return pending.order_by("created_at")


def reservations_undeliverable() -> QuerySet[Reservation]:
    """PENDING reservations whose concert-reserve outbox row is dead: one query, never an id list."""
    dead = dead_aggregate_ids(using=DB, event="concert-reserve")
    pending = Reservation.objects.using(DB).filter(status=ReservationStatus.PENDING)
    return pending.annotate(ref=Cast("id", CharField())).filter(ref__in=dead).order_by("id")


def saga_gauge_samples() -> Iterator[Sample]:
    """For /metrics: how long the oldest PENDING saga has waited (the status-and-created index), and the hold."""
    pending = Reservation.objects.using(DB).filter(status=ReservationStatus.PENDING)
    oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
    age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    yield Sample("ticketing_saga_oldest_pending_age_seconds", "Age of the oldest PENDING reservation.", {}, age)
    yield Sample(
        "ticketing_reservation_hold_seconds",
        "How long a PENDING reservation may wait.",
        {},
        settings.RESERVATION_HOLD_SECONDS,
    )


def waiting_room_lengths() -> dict[str, int]:
    """For /metrics: users waiting per queued performance not yet started (empty while Redis is down)."""
    queued = Performance.objects.using(DB).filter(queue=True, starts_at__gt=timezone.now())
    performance_ids = list(queued.values_list("id", flat=True))
    if not performance_ids:
        return {}
    try:
        lengths = waiting_room.queue_lengths(performance_ids=performance_ids)
    except waiting_room.WaitingRoomUnavailable as exc:
        logger.warning("waiting room lengths unavailable: %s", exc)
        return {}
    return {str(performance_id): length for performance_id, length in lengths.items()}


def queued_performances() -> list[tuple[int, datetime | None]]:
    """Queued performances not yet started, with their sales opening: the waiting room's timer walks these."""
    queued = Performance.objects.using(DB).filter(queue=True, starts_at__gt=timezone.now()).order_by("id")
    return list(queued.values_list("id", "sales_open_at"))
