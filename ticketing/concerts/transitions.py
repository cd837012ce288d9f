"""Every state change of a reservation or a seat goes through the tables here; anything else is refused."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

from ticketing.events.catalogue import Reason
from ticketing.observability import metrics

from .models import LIVE_STATUSES, Reservation, ReservationSeat, ReservationStatus, Seat, SeatStatus

logger = logging.getLogger(__name__)

DB = "concerts"

RESERVATION_TRANSITIONS: dict[str, set[str]] = {
    ReservationStatus.PENDING: {
        ReservationStatus.CONFIRMED,
        ReservationStatus.SYSTEM_CANCELED,
        ReservationStatus.CANCELED,
    },
    ReservationStatus.CONFIRMED: {ReservationStatus.CANCELED},
    ReservationStatus.SYSTEM_CANCELED: set(),
    ReservationStatus.CANCELED: set(),
}
SEAT_TRANSITIONS: dict[str, set[str]] = {
    SeatStatus.AVAILABLE: {SeatStatus.HELD, SeatStatus.OFFERED},
    SeatStatus.HELD: {SeatStatus.SOLD, SeatStatus.AVAILABLE},
    SeatStatus.SOLD: {SeatStatus.AVAILABLE},  # a user cancellation before the performance
    # A waiting list's offer: given back when it lapses, or to its person's booking when accepted.
    SeatStatus.OFFERED: {SeatStatus.AVAILABLE},
}


class InvalidTransition(Exception):
    pass


class ReservationWithoutSeats(Exception):
    """A reservation with no seat lines: moving it would leave its seats behind, so nothing moves."""


def check_transition(table: dict[str, set[str]], current: str, target: str) -> None:
    if target not in table[current]:
        raise InvalidTransition(f"{current} -> {target}")


def seat_transition(seat: Seat, target: str) -> None:
    """One seat (locked by the caller)."""
    check_transition(SEAT_TRANSITIONS, seat.status, target)
    seat.status = target
    seat.save(using=DB, update_fields=["status"])


def reservation_seats_transition(reservation: Reservation, target: str) -> None:
    """Every seat of the reservation (locked, in id order); lines stay live only while it is.

    A reservation without seat lines raises ReservationWithoutSeats, which rolls the whole step back
    (a consumed event becomes a dead letter naming it): no reservation ends while a seat stays behind.
    """
    seats = list(
        Seat.objects.using(DB).select_for_update().filter(reservation_lines__reservation=reservation).order_by("id")
    )
    if not seats:
        raise ReservationWithoutSeats(
            f"reservation {reservation.id} has no seat lines: its seats cannot move to {target}"
        )
    for seat in seats:
        seat_transition(seat, target)
    if reservation.status not in LIVE_STATUSES:
        ReservationSeat.objects.using(DB).filter(reservation=reservation).update(live=False)


def reservation_transition(reservation: Reservation, target: str, step: str, reason: str = "") -> None:
    check_transition(RESERVATION_TRANSITIONS, reservation.status, target)
    if reservation.status == ReservationStatus.PENDING:  # the saga ends here, whichever way
        finished = partial(metrics.saga_finished, outcome=target, started_at=reservation.created_at)
        transaction.on_commit(finished, using=DB)
        logger.info(
            "reservation %s %s %s", reservation.id, target, reason or "", extra={"correlation_id": str(reservation.id)}
        )
    reservation.status = target
    reservation.saga_step = step
    reservation.reason = public_reason(reason)
    reservation.save(using=DB, update_fields=["status", "saga_step", "reason", "updated_at"])


def public_reason(reason: str) -> str:
    """``reason`` if it is one of the vocabulary; anything else (an error's text) reads "payment error"."""
    if not reason or reason in Reason.ALL:
        return reason
    logger.warning("reason %r is not for users' eyes: recorded as %r", reason[:500], Reason.PAYMENT_ERROR)
    return Reason.PAYMENT_ERROR
