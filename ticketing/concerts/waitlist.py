"""Writes of the waiting list: joining it, offering freed seats, accepting an offer, letting one lapse.

Freed seats arrive as ``seat-released`` events (a compensation, an expired hold, a cancellation, a lapsed
offer). Their consumer offers the free seats of each grade to the first entries in line they fit: the
seats become OFFERED (HELD to everyone else) for that person alone until the offer expires
(WAITLIST_OFFER_SECONDS, never past the performance's start). Accepting books them through the same
saga as any booking; an offer not taken in time gives its seats back, announced again, for the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ticketing.events.catalogue import Reason, SeatReleased
from ticketing.outbox.publish import publish

from . import services
from .models import (
    OfferSeat,
    OfferStatus,
    Performance,
    Reservation,
    Seat,
    SeatStatus,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from .transitions import seat_transition

logger = logging.getLogger(__name__)

DB = "concerts"
ENTRIES_PER_OFFER_ROUND = 200  # a bounded look down the line per grade and event


class PerformanceNotFound(Exception):
    pass


class OfferNotFound(Exception):
    pass


class OfferLapsed(services.BookingRefused):
    pass


class OfferWithoutSeats(services.BookingRefused):
    pass


@dataclass(frozen=True)
class Place:
    entry: WaitlistEntry
    position: int  # 1 = next in line; 0 = holding an offer
    created: bool


def waitlist_join(*, user_id: int, performance_id: int, grade: str, seats: int) -> Place:
    """Join the line for ``seats`` seats of ``grade``; a repeat keeps the place (and the first count).

    Refused (BookingRefused, nothing written) for a performance that has started or is not on sale, an
    unknown grade, a grade with seats still free (book them instead), or more seats than the per-user
    limit leaves.
    """
    performance = Performance.objects.using(DB).filter(pk=performance_id).first()
    if performance is None:
        raise PerformanceNotFound(performance_id)
    if not 1 <= seats <= settings.MAX_SEATS_PER_USER:
        raise services.BookingRefused(f"A waiting list entry is for 1 to {settings.MAX_SEATS_PER_USER} seats.")
    services.booking_window_check(performance, timezone.now())
    grade_seats = Seat.objects.using(DB).filter(performance=performance, grade=grade)
    if not grade_seats.exists():
        raise services.BookingRefused(f"This performance has no {grade!r} seats.")
    with transaction.atomic(using=DB):
        performance_lock(performance.id)
        services.seats_per_user_check(user_id=user_id, performance=performance, adding=seats)
        entry = (
            WaitlistEntry.objects.using(DB)
            .filter(performance=performance, user_id=user_id, grade=grade)
            .filter(status__in=[WaitlistStatus.WAITING, WaitlistStatus.OFFERED])
            .first()
        )
        created = entry is None
        if entry is None:
            if grade_seats.filter(status=SeatStatus.AVAILABLE).exists():
                raise services.BookingRefused(f"Seats of grade {grade} are free: book them instead.")
            entry = WaitlistEntry.objects.using(DB).create(
                performance=performance, user_id=user_id, grade=grade, seats=seats
            )
    return Place(entry=entry, position=waitlist_position(entry), created=created)


def performance_lock(performance_id: int) -> Performance | None:
    """The performance, locked: its joins and offer rounds take turns. Otherwise a join that found no free
    seat could commit just after a round that found nobody waiting, leaving a free seat and a person
    waiting for it side by side. FOR NO KEY UPDATE: bookings, which insert rows that refer to the
    performance (FOR KEY SHARE), do not wait for it."""
    return Performance.objects.using(DB).select_for_update(no_key=True).filter(pk=performance_id).first()


def waitlist_position(entry: WaitlistEntry) -> int:
    if entry.status != WaitlistStatus.WAITING:
        return 0
    ahead = WaitlistEntry.objects.using(DB).filter(
        performance_id=entry.performance_id, grade=entry.grade, status=WaitlistStatus.WAITING, id__lt=entry.id
    )
    return ahead.count() + 1


def waitlist_offer_free_seats(*, performance_id: int, grade: str) -> int:
    """Offer the grade's free seats to the first entries in line they fit; the number of offers made.

    Runs inside the consumer's transaction. A seat a booking has locked right now is waited for: taken,
    it is no longer AVAILABLE; given up, it is offered. An entry the free seats do not fit keeps its
    place, and a later entry they fit gets them.
    """
    now = timezone.now()
    made = 0
    with transaction.atomic(using=DB):
        performance = performance_lock(performance_id)
        if performance is None or performance.starts_at <= now:  # gone, or started: no offer outlives it
            return 0
        line = (
            WaitlistEntry.objects.using(DB)
            .select_for_update()
            .filter(performance=performance, grade=grade, status=WaitlistStatus.WAITING)
            .order_by("id")[:ENTRIES_PER_OFFER_ROUND]
        )
        entries = list(line)
        if not entries:
            return 0
        free = list(
            Seat.objects.using(DB)
            .select_for_update()
            .filter(performance=performance, grade=grade, status=SeatStatus.AVAILABLE)
            .order_by("id")
        )
        expires_at = min(now + timedelta(seconds=settings.WAITLIST_OFFER_SECONDS), performance.starts_at)
        for entry in entries:
            if len(free) < entry.seats:
                continue
            taken, free = free[: entry.seats], free[entry.seats :]
            offer_make(entry, taken, expires_at)
            made += 1
            if not free:
                break
    return made


def offer_make(entry: WaitlistEntry, seats: list[Seat], expires_at: Any) -> WaitlistOffer:
    offer = WaitlistOffer.objects.using(DB).create(
        entry=entry, performance_id=entry.performance_id, user_id=entry.user_id, expires_at=expires_at
    )
    OfferSeat.objects.using(DB).bulk_create(OfferSeat(offer=offer, seat=seat) for seat in seats)
    for seat in seats:
        seat_transition(seat, SeatStatus.OFFERED)
    entry.status = WaitlistStatus.OFFERED
    entry.save(using=DB, update_fields=["status"])
    logger.info("offer %s: seats %s to user %s until %s", offer.id, [s.id for s in seats], entry.user_id, expires_at)
    return offer


def waitlist_offer_accept(*, user_id: int, offer_id: int) -> Reservation:
    """Book the offer's seats through the saga (a PENDING reservation asking payments); a repeat returns
    the same reservation. OfferLapsed once it expired; SeatLimitReached leaves the offer open."""
    with transaction.atomic(using=DB):
        offer = WaitlistOffer.objects.using(DB).select_for_update().filter(pk=offer_id, user_id=user_id).first()
        if offer is None:
            raise OfferNotFound(offer_id)
        if offer.status == OfferStatus.ACCEPTED:
            assert offer.reservation_id is not None
            return Reservation.objects.using(DB).get(pk=offer.reservation_id)
        if offer.status != OfferStatus.OPEN or offer.expires_at <= timezone.now():
            raise OfferLapsed("This offer has lapsed: its seats went to the next person in line.")
        seats = offer_release_seats(offer)
        if not seats:  # broken data (the audit names it as A6.9): nothing is booked, an operator is told
            logger.error("offer %s holds no seats and cannot be accepted", offer.id)
            raise OfferWithoutSeats("This offer holds no seats; nothing was booked.")
        # The seats are AVAILABLE only inside this transaction, locked: the booking below holds them at once.
        reservation = services.reservation_hold(
            user_id=user_id, performance=offer.performance, seat_ids=[seat.id for seat in seats]
        )
        offer_close(offer, OfferStatus.ACCEPTED, WaitlistStatus.BOOKED, reservation=reservation)
    logger.info("offer %s accepted: reservation %s", offer.id, reservation.id)
    return reservation


def offer_release_seats(offer: WaitlistOffer) -> list[Seat]:
    """The offer's seats (locked, in id order), OFFERED -> AVAILABLE; its lines closed."""
    held = Seat.objects.using(DB).select_for_update().filter(offer_lines__offer=offer, offer_lines__open=True)
    seats = list(held.order_by("id"))
    for seat in seats:
        seat_transition(seat, SeatStatus.AVAILABLE)
    OfferSeat.objects.using(DB).filter(offer=offer).update(open=False)
    return seats


def offer_close(
    offer: WaitlistOffer, status: str, entry_status: str, *, reservation: Reservation | None = None
) -> None:
    offer.status = status
    offer.reservation = reservation
    offer.save(using=DB, update_fields=["status", "reservation"])
    WaitlistEntry.objects.using(DB).filter(pk=offer.entry_id).update(status=entry_status)


def waitlist_offers_lapse(*, limit: int = 500) -> int:
    """Beat: offers past their time give their seats back, announced as released for the next in line."""
    due = WaitlistOffer.objects.using(DB).filter(status=OfferStatus.OPEN, expires_at__lte=timezone.now())
    return sum(offer_lapse(offer_id) for offer_id in due.order_by("expires_at").values_list("id", flat=True)[:limit])


def offer_lapse(offer_id: int) -> bool:
    with transaction.atomic(using=DB):
        offer = WaitlistOffer.objects.using(DB).select_for_update().filter(pk=offer_id).first()
        if offer is None or offer.status != OfferStatus.OPEN or offer.expires_at > timezone.now():
            return False  # accepted (or lapsed) meanwhile
        seats = offer_release_seats(offer)
        offer_close(offer, OfferStatus.LAPSED, WaitlistStatus.LAPSED)
        released = SeatReleased(
            performance_id=offer.performance_id, seat_ids=[seat.id for seat in seats], reason=Reason.OFFER_LAPSED
        )
        publish(released, using=DB, aggregate_id=f"offer-{offer.id}")
    logger.info("offer %s lapsed: seats %s passed on", offer_id, [seat.id for seat in seats])
    return True


def waitlist_offer_released_seats(*, performance_id: int, seat_ids: list[int]) -> int:
    """seat-released: offer the free seats of each grade among the released ones to the waiting list."""
    grades = Seat.objects.using(DB).filter(pk__in=seat_ids).values_list("grade", flat=True).distinct().order_by()
    return sum(waitlist_offer_free_seats(performance_id=performance_id, grade=grade) for grade in sorted(grades))
