"""Writes of the concerts service: booking, and the saga's confirm and compensate steps.

State changes go through ``transitions``; the waiting room's part through ``admission``; the events
concerts consumes are handled in ``handlers``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from ticketing.events.catalogue import ConcertReserve, PaymentRefund, Reason, ReservationCanceled, SeatReleased
from ticketing.observability import metrics
from ticketing.outbox.publish import publish

from . import tickets
from .admission import admission_booking_started_on_commit, admission_check, admission_end_on_commit
from .models import (
    Performance,
    Reservation,
    ReservationSeat,
    ReservationStatus,
    SagaStep,
    Seat,
    SeatStatus,
    public_seat_status,
)
from .selectors import reservations_past_hold, reservations_undeliverable
from .transitions import (
    SEAT_TRANSITIONS,
    ReservationWithoutSeats,
    check_transition,
    reservation_seats_transition,
    reservation_transition,
)

logger = logging.getLogger(__name__)

DB = "concerts"


class SeatNotFound(Exception):
    pass


class SeatNotAvailable(Exception):
    """``taken``: each seat not available and its status. A booking of one seat keeps its short message."""

    def __init__(self, taken: dict[int, str], *, several: bool = False) -> None:
        named = ", ".join(f"seat {seat_id} ({status})" for seat_id, status in taken.items())
        one_status = next(iter(taken.values()))
        super().__init__(f"Not available: {named}; nothing was held." if several else f"The seat is {one_status}.")
        self.taken = taken


class BookingRefused(Exception):
    """A rule of the shop refuses the booking (its message says which); nothing was held."""


class SeatLimitReached(BookingRefused):
    pass


class ReservationNotFound(Exception):
    pass


class CannotCancel(Exception):
    """The reservation is in a state (or past a time) that a user cancellation cannot change."""


def reservation_create(
    *, user_id: int, seat_id: int | None = None, seat_ids: Sequence[int] | None = None
) -> Reservation:
    """Hold the seats (all or nothing), create a PENDING reservation and ask payments for their sum.

    Seats are locked in id order (two bookings of overlapping seats cannot deadlock), then the user's
    lock for the performance, under which the user's live seats are counted.
    """
    wanted = list(seat_ids) if seat_ids is not None else [seat_id] if seat_id is not None else []
    if not 1 <= len(wanted) <= settings.MAX_SEATS_PER_USER or len(set(wanted)) != len(wanted):
        raise BookingRefused(f"A booking is of 1 to {settings.MAX_SEATS_PER_USER} distinct seats.")
    performance = performance_of_seats(wanted)
    booking_window_check(performance, timezone.now())
    if performance.queue:
        admission_check(performance_id=performance.id, user_id=user_id)
    try:
        with transaction.atomic(using=DB):
            reservation = reservation_hold(user_id=user_id, performance=performance, seat_ids=wanted)
    except IntegrityError as exc:  # a one-live-reservation-per-seat constraint: another booking won
        taken = dict.fromkeys(wanted, str(SeatStatus.HELD))
        raise SeatNotAvailable(taken, several=len(wanted) > 1) from exc
    logger.info(
        "reservation %s booked: seats %s, %s won",
        reservation.id,
        wanted,
        reservation.amount,
        extra={"correlation_id": str(reservation.id)},
    )
    if performance.queue:
        admission_booking_started_on_commit(performance_id=performance.id, user_id=user_id)
    return reservation


def performance_of_seats(seat_ids: list[int]) -> Performance:
    performances = list(Performance.objects.using(DB).filter(seats__in=seat_ids).distinct()[:2])
    if not performances:
        raise SeatNotFound(seat_ids[0])
    if len(performances) > 1:
        raise BookingRefused("All seats of one booking must be of one performance.")
    return performances[0]


def booking_window_check(performance: Performance, now: datetime) -> None:
    if performance.starts_at <= now:
        raise BookingRefused("The performance has already started: its seats can no longer be booked.")
    if performance.sales_open_at and now < performance.sales_open_at:
        raise BookingRefused(f"Sales for this performance open at {performance.sales_open_at.isoformat()}.")


def reservation_hold(*, user_id: int, performance: Performance, seat_ids: list[int]) -> Reservation:
    """Inside the booking's transaction: hold every seat, or raise and hold none (the caller rolls back)."""
    prices = seats_hold(performance=performance, seat_ids=seat_ids)
    seats_per_user_check(user_id=user_id, performance=performance, adding=len(seat_ids))
    reservation = Reservation.objects.using(DB).create(
        user_id=user_id, seat_id=seat_ids[0], amount=sum(prices[i] for i in seat_ids)
    )
    ReservationSeat.objects.using(DB).bulk_create(
        ReservationSeat(reservation=reservation, seat_id=i, performance=performance, user_id=user_id, price=prices[i])
        for i in seat_ids
    )
    hold_until = reservation.created_at + timedelta(seconds=settings.RESERVATION_HOLD_SECONDS)
    publish(
        ConcertReserve(
            reservation_id=reservation.id, user_id=user_id, amount=reservation.amount, hold_until=hold_until
        ),
        using=DB,
        aggregate_id=reservation.id,
    )
    transaction.on_commit(metrics.saga_started, using=DB)
    return reservation


# AVAILABLE -> HELD for the booking's seats in one statement: the subquery locks them in id order (two
# bookings of overlapping seats cannot deadlock), and a seat another booking held meanwhile is re-checked
# after its lock is released and left out.
SEATS_HOLD_SQL = """
UPDATE concerts_seat SET status = %(held)s
WHERE id IN (
    SELECT id FROM concerts_seat
    WHERE id = ANY(%(ids)s) AND performance_id = %(performance)s AND status = %(available)s
    ORDER BY id FOR UPDATE
)
RETURNING id, price
"""


def seats_hold(*, performance: Performance, seat_ids: list[int]) -> dict[int, int]:
    """Hold the seats with one conditional UPDATE ... RETURNING; each seat's price. When not every seat
    was held, a second read tells which are not of the performance (404) from which are taken (409)."""
    check_transition(SEAT_TRANSITIONS, SeatStatus.AVAILABLE, SeatStatus.HELD)
    params: dict[str, Any] = {
        "ids": seat_ids,
        "performance": performance.id,
        "held": str(SeatStatus.HELD),
        "available": str(SeatStatus.AVAILABLE),
    }
    with connections[DB].cursor() as cursor:
        cursor.execute(SEATS_HOLD_SQL, params)
        prices = dict(cursor.fetchall())
    if len(prices) == len(seat_ids):
        return prices
    statuses = dict(Seat.objects.using(DB).filter(pk__in=seat_ids, performance=performance).values_list("id", "status"))
    if missing := [i for i in seat_ids if i not in statuses]:
        raise SeatNotFound(missing[0])
    taken = {i: public_seat_status(statuses[i]) for i in seat_ids if i not in prices}
    raise SeatNotAvailable(taken, several=len(seat_ids) > 1)


def seats_per_user_check(*, user_id: int, performance: Performance, adding: int) -> None:
    """Under the user's lock for the performance (a row every booking of theirs for it locks first).

    The lock is one upsert (it creates the row or locks the one there); the count is a statement of
    its own, so that it sees what a booking of the same user committed while this one waited.
    """
    with connections[DB].cursor() as cursor:
        cursor.execute(
            "INSERT INTO concerts_bookerlock (user_id, performance_id) VALUES (%s, %s) "
            "ON CONFLICT (user_id, performance_id) DO UPDATE SET user_id = EXCLUDED.user_id",
            [user_id, performance.id],
        )
    live = ReservationSeat.objects.using(DB).filter(user_id=user_id, performance=performance, live=True).count()
    limit = settings.MAX_SEATS_PER_USER
    if live + adding > limit:
        raise SeatLimitReached(
            f"At most {limit} seats per user for one performance (MAX_SEATS_PER_USER); you hold {live} already."
        )


def reservation_confirm(*, reservation_id: int, payment_id: int) -> None:
    """payment-success: the seats are sold. A repeat is a no-op.

    A payment that arrives after the reservation was cancelled (its hold expired first) must not leave
    the user paying for nothing: concerts asks payments to refund it.
    """
    with transaction.atomic(using=DB):
        reservation = reservation_lock(reservation_id)
        if reservation is None or reservation.status == ReservationStatus.CONFIRMED:
            return
        if reservation.status != ReservationStatus.PENDING:
            reservation_request_refund(reservation, reason=reservation.reason, payment_id=payment_id)
            return
        reservation_transition(reservation, ReservationStatus.CONFIRMED, SagaStep.SUCCESS_PAYMENT)
        reservation_seats_transition(reservation, SeatStatus.SOLD)
        tickets.tickets_issue(reservation)
        admission_end_on_commit(reservation, confirmed=True)


def reservation_compensate(*, reservation_id: int, reason: str) -> bool:
    """Cancel a PENDING reservation and give its seats back; False (a no-op) if it is no longer PENDING.

    Both the payment-fail consumer and the hold-expiry sweeper end here: the row lock and the state
    check decide which of them (or a payment-success) wins.
    """
    with transaction.atomic(using=DB):
        reservation = reservation_lock(reservation_id)
        if reservation is None or reservation.status != ReservationStatus.PENDING:
            return False
        reservation_transition(reservation, ReservationStatus.SYSTEM_CANCELED, SagaStep.SYSTEM_CANCEL_PAYMENT, reason)
        reservation_seats_transition(reservation, SeatStatus.AVAILABLE)
        reservation_announce_unsold(reservation)
        seats_released_publish(reservation, reason=reservation.reason)
        admission_end_on_commit(reservation, confirmed=False)
    return True


def reservation_cancel(*, user_id: int, reservation_id: int) -> Reservation:
    """The owner cancels: a PENDING booking at once, a CONFIRMED one (before the show, none of its tickets
    used at the door) with a refund; its tickets are void.

    Cancelling a cancelled reservation again is a no-op. A PENDING booking's payment, if it still
    arrives, is refunded by reservation_confirm.
    """
    with transaction.atomic(using=DB):
        reservation = reservation_lock(reservation_id)
        if reservation is None or reservation.user_id != user_id:
            raise ReservationNotFound(reservation_id)
        if reservation.status == ReservationStatus.CANCELED:
            return reservation
        if reservation.status == ReservationStatus.SYSTEM_CANCELED:
            raise CannotCancel(f"The reservation is already {reservation.status}.")
        paid = reservation.status == ReservationStatus.CONFIRMED
        if paid and reservation.seat.performance.starts_at <= timezone.now():
            raise CannotCancel("The performance has already started.")
        if paid:
            try:
                tickets.tickets_void(reservation)
            except tickets.TicketUsed as exc:
                raise CannotCancel(str(exc)) from exc
        reservation_transition(
            reservation, ReservationStatus.CANCELED, SagaStep.USER_CANCEL_PAYMENT, Reason.CANCELED_BY_USER
        )
        try:
            reservation_seats_transition(reservation, SeatStatus.AVAILABLE)
        except ReservationWithoutSeats as exc:  # the data is broken: nothing changes, an operator is told
            logger.error("reservation %s cannot be cancelled: %s", reservation.id, exc)
            raise CannotCancel("This booking's seats cannot be found; nothing was changed.") from exc
        seats_released_publish(reservation, reason=Reason.CANCELED_BY_USER)
        if paid:
            reservation_request_refund(reservation, reason=Reason.CANCELED_BY_USER)
        else:
            reservation_announce_unsold(reservation)
            admission_end_on_commit(reservation, confirmed=False)
    return reservation


def seats_released_publish(reservation: Reservation, *, reason: str) -> None:
    """Announce the seats a cancelled reservation gave back (in its transaction): the waiting list's
    consumer offers them to the first entry they fit."""
    seat_ids = ReservationSeat.objects.using(DB).filter(reservation=reservation).values_list("seat_id", flat=True)
    publish(
        SeatReleased(performance_id=reservation.seat.performance_id, seat_ids=sorted(seat_ids), reason=reason),
        using=DB,
        aggregate_id=reservation.id,
    )


def reservation_announce_unsold(reservation: Reservation) -> None:
    """A PENDING reservation ended without a sale: payments must not charge for it any more (a late or
    replayed concert-reserve finds it ended)."""
    publish(
        ReservationCanceled(reservation_id=reservation.id, user_id=reservation.user_id, reason=reservation.reason),
        using=DB,
        aggregate_id=reservation.id,
    )


def reservation_request_refund(reservation: Reservation, *, reason: str, payment_id: int | None = None) -> None:
    publish(
        PaymentRefund(reservation_id=reservation.id, payment_id=payment_id, reason=reason),
        using=DB,
        aggregate_id=reservation.id,
    )


def reservation_repair_stuck(*, limit: int = 500) -> int:
    """Compensate PENDING reservations whose concert-reserve went dead: no payment can come for them.

    One query on indexes (PENDING reservations, dead outbox rows), at most ``limit`` rows a run.
    """
    stuck = list(reservations_undeliverable().values_list("id", flat=True)[:limit])
    repaired = reservations_compensate(stuck, reason=Reason.UNDELIVERABLE)
    if repaired:
        logger.warning("compensated %d reservations whose payment request was undeliverable", repaired)
    return repaired


def reservation_expire_holds(*, hold_seconds: int, limit: int = 500) -> int:
    """Compensate PENDING reservations older than the hold (a database deadline, run by beat)."""
    ids = list(reservations_past_hold(hold_seconds=hold_seconds).values_list("id", flat=True)[:limit])
    return reservations_compensate(ids, reason=Reason.HOLD_EXPIRED)


def reservations_compensate(reservation_ids: list[int], *, reason: str) -> int:
    """Each in a transaction of its own; one that cannot move (no seat lines) stays as it is, loudly in
    the logs (and in the audit), and the others go on."""
    compensated = 0
    for reservation_id in reservation_ids:
        try:
            compensated += reservation_compensate(reservation_id=reservation_id, reason=reason)
        except ReservationWithoutSeats:
            logger.exception("reservation %s cannot be compensated (%s)", reservation_id, reason)
    return compensated


def reservation_lock(reservation_id: int) -> Reservation | None:
    """The reservation, locked; its seats are locked after it (reservation_seats_transition), never before."""
    reservation = (
        Reservation.objects.using(DB)
        .select_for_update(of=("self",))
        .select_related("seat__performance")
        .filter(pk=reservation_id)
        .first()
    )
    if reservation is None:
        logger.error("reservation %s does not exist", reservation_id)
    return reservation
