"""Writes of the concerts service: booking, and the saga's confirm and compensate steps."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ticketing.observability import metrics
from ticketing.outbox.publish import publish

from .models import Concert, Performance, Reservation, ReservationStatus, SagaStep, Seat, SeatStatus
from .selectors import reservations_past_hold, reservations_undeliverable

logger = logging.getLogger(__name__)

DB = "concerts"

# Every state change goes through these tables; anything else is refused.
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
    SeatStatus.AVAILABLE: {SeatStatus.HELD},
    SeatStatus.HELD: {SeatStatus.SOLD, SeatStatus.AVAILABLE},
    SeatStatus.SOLD: {SeatStatus.AVAILABLE},  # a user cancellation before the performance
}


# What a user may read in a reservation's ``reason``: a small fixed vocabulary. An error's text
# (database hosts, SQL, exception reprs) stays in the logs, the outbox row and the dead letter.
HOLD_EXPIRED = "hold expired"
UNDELIVERABLE = "payment request undeliverable"
PAYMENT_ERROR = "payment error"
CANCELED_BY_USER = "canceled by user"
PAYMENT_REFUSALS = frozenset({"insufficient balance", "wallet missing", "amount mismatch", PAYMENT_ERROR})
REASONS = PAYMENT_REFUSALS | {HOLD_EXPIRED, UNDELIVERABLE, CANCELED_BY_USER}


class SeatNotFound(Exception):
    pass


class SeatNotAvailable(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(f"The seat is {status}.")
        self.status = status


class InvalidTransition(Exception):
    pass


class ReservationNotFound(Exception):
    pass


class CannotCancel(Exception):
    """The reservation is in a state (or past a time) that a user cancellation cannot change."""


def check_transition(table: dict[str, set[str]], current: str, target: str) -> None:
    if target not in table[current]:
        raise InvalidTransition(f"{current} -> {target}")


def reservation_create(*, user_id: int, seat_id: int) -> Reservation:
    """Hold the seat, create a PENDING reservation and ask payments for the money, in one transaction."""
    try:
        with transaction.atomic(using=DB):
            seat = Seat.objects.using(DB).select_for_update().filter(pk=seat_id).first()
            if seat is None:
                raise SeatNotFound(seat_id)
            if seat.status != SeatStatus.AVAILABLE:
                raise SeatNotAvailable(seat.status)
            seat_move(seat, SeatStatus.HELD)
            reservation = Reservation.objects.using(DB).create(user_id=user_id, seat=seat, amount=seat.price)
            publish(
                "concert-reserve",
                {"reservation_id": reservation.id, "user_id": user_id, "amount": reservation.amount},
                using=DB,
                aggregate_id=reservation.id,
            )
            transaction.on_commit(metrics.saga_started, using=DB)
    except IntegrityError as exc:  # the one-live-reservation constraint: another booking won
        raise SeatNotAvailable(SeatStatus.HELD) from exc
    logger.info(
        "reservation %s booked: seat %s, %s won",
        reservation.id,
        seat_id,
        reservation.amount,
        extra={"correlation_id": str(reservation.id)},
    )
    return reservation


def seat_move(seat: Seat, target: str) -> None:
    check_transition(SEAT_TRANSITIONS, seat.status, target)
    seat.status = target
    seat.save(using=DB, update_fields=["status"])


def reservation_confirm(*, reservation_id: int, payment_id: int) -> None:
    """payment-success: the seat is sold. A repeat is a no-op.

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
        reservation_move(reservation, ReservationStatus.CONFIRMED, SagaStep.SUCCESS_PAYMENT)
        seat_move(reservation.seat, SeatStatus.SOLD)


def reservation_compensate(*, reservation_id: int, reason: str) -> bool:
    """Cancel a PENDING reservation and give the seat back; False (a no-op) if it is no longer PENDING.

    Both the payment-fail consumer and the hold-expiry sweeper end here: the row lock and the state
    check decide which of them (or a payment-success) wins.
    """
    with transaction.atomic(using=DB):
        reservation = reservation_lock(reservation_id)
        if reservation is None or reservation.status != ReservationStatus.PENDING:
            return False
        reservation_move(reservation, ReservationStatus.SYSTEM_CANCELED, SagaStep.SYSTEM_CANCEL_PAYMENT, reason)
        seat_move(reservation.seat, SeatStatus.AVAILABLE)
    return True


def reservation_cancel(*, user_id: int, reservation_id: int) -> Reservation:
    """The owner cancels: a PENDING booking at once, a CONFIRMED one (before the show) with a refund.

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
        reservation_move(reservation, ReservationStatus.CANCELED, SagaStep.USER_CANCEL_PAYMENT, CANCELED_BY_USER)
        seat_move(reservation.seat, SeatStatus.AVAILABLE)
        if paid:
            reservation_request_refund(reservation, reason=CANCELED_BY_USER)
    return reservation


def reservation_request_refund(reservation: Reservation, *, reason: str, payment_id: int | None = None) -> None:
    publish(
        "payment-refund",
        {"reservation_id": reservation.id, "payment_id": payment_id, "reason": reason},
        using=DB,
        aggregate_id=reservation.id,
    )


def reservation_repair_stuck(*, limit: int = 500) -> int:
    """Compensate PENDING reservations whose concert-reserve went dead: no payment can come for them.

    One query on indexes (PENDING reservations, dead outbox rows), at most ``limit`` rows a run.
    """
    stuck = list(reservations_undeliverable().values_list("id", flat=True)[:limit])
    repaired = sum(reservation_compensate(reservation_id=rid, reason=UNDELIVERABLE) for rid in stuck)
    if repaired:
        logger.warning("compensated %d reservations whose payment request was undeliverable", repaired)
    return repaired


def reservation_expire_holds(*, hold_seconds: int, limit: int = 500) -> int:
    """Compensate PENDING reservations older than the hold (a database deadline, run by beat)."""
    ids = list(reservations_past_hold(hold_seconds=hold_seconds).values_list("id", flat=True)[:limit])
    return sum(reservation_compensate(reservation_id=rid, reason=HOLD_EXPIRED) for rid in ids)


def reservation_lock(reservation_id: int) -> Reservation | None:
    """The reservation and its seat, both locked (seat first would invert the booking's lock order)."""
    reservation = (
        Reservation.objects.using(DB)
        .select_for_update(of=("self", "seat"))
        .select_related("seat__performance")
        .filter(pk=reservation_id)
        .first()
    )
    if reservation is None:
        logger.error("reservation %s does not exist", reservation_id)
    return reservation


def public_reason(reason: str) -> str:
    """``reason`` if it is one of the vocabulary; anything else (an error's text) reads "payment error"."""
    if not reason or reason in REASONS:
        return reason
    logger.warning("reason %r is not for users' eyes: recorded as %r", reason[:500], PAYMENT_ERROR)
    return PAYMENT_ERROR


def reservation_move(reservation: Reservation, target: str, step: str, reason: str = "") -> None:
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


def handle_payment_success(payload: dict[str, Any]) -> None:
    reservation_confirm(reservation_id=int(payload["reservation_id"]), payment_id=int(payload["payment_id"]))


def handle_payment_fail(payload: dict[str, Any]) -> None:
    reservation_compensate(reservation_id=int(payload["reservation_id"]), reason=str(payload.get("reason", "")))


def handle_payment_refunded(payload: dict[str, Any]) -> None:
    # The saga's last word after a late payment; its inbox row completes the reservation's timeline.
    logger.info("payment %s for reservation %s refunded", payload["payment_id"], payload["reservation_id"])


EVENT_HANDLERS = {
    "payment-success": handle_payment_success,
    "payment-fail": handle_payment_fail,
    "payment-refunded": handle_payment_refunded,
}


# --- Demo data ---------------------------------------------------------------------------------------

DEMO_CONCERTS = [
    (
        "아이유 콘서트: 황금빛 저녁",
        "IU Concert: Golden Evening",
        "아이유 (IU)",
        ["잠실 올림픽주경기장", "부산 사직실내체육관"],
    ),
    ("서울 시립 교향악단 신년 음악회", "Seoul Philharmonic New Year Concert", "서울시향", ["예술의전당 콘서트홀"]),
    ("인디 록 페스티벌 2027", "Indie Rock Festival 2027", "잔나비, 새소년", ["KSPO DOME", "인천 파라다이스시티"]),
]
DEMO_GRADES = [("VIP", 180_000, 8), ("R", 140_000, 12), ("S", 110_000, 12), ("A", 80_000, 16)]


def demo_catalogue_load(*, first_day: datetime) -> int:
    """Idempotent: concerts are found by title, performances by venue, seats by label."""
    created = 0
    with transaction.atomic(using=DB):
        for index, (title, title_en, artist, venues) in enumerate(DEMO_CONCERTS):
            concert, _ = Concert.objects.using(DB).get_or_create(
                title=title, defaults={"title_en": title_en, "artist": artist}
            )
            for day, venue in enumerate(venues):
                starts_at = first_day + timedelta(days=7 * index + day)
                performance, _ = Performance.objects.using(DB).get_or_create(
                    concert=concert, venue=venue, defaults={"starts_at": starts_at}
                )
                existing = set(Seat.objects.using(DB).filter(performance=performance).values_list("label", flat=True))
                seats = [
                    Seat(performance=performance, label=f"{grade}-{number:02d}", grade=grade, price=price)
                    for grade, price, count in DEMO_GRADES
                    for number in range(1, count + 1)
                    if f"{grade}-{number:02d}" not in existing
                ]
                Seat.objects.using(DB).bulk_create(seats)
                created += len(seats)
    return created


BIG_HALL_TITLE = "부하 시험 공연 (Big Hall)"
BIG_HALL_VENUE = "Big Hall"
BIG_HALL_PRICE = 10_000


def demo_big_hall_load(*, seats: int, starts_at: datetime) -> tuple[int, int]:
    """One more performance of ``seats`` seats for load tests; (performance id, seats created).

    Idempotent: the performance is found by its concert and venue, seats by label, so running it again
    (or with a larger count) only adds what is missing.
    """
    with transaction.atomic(using=DB):
        concert, _ = Concert.objects.using(DB).get_or_create(
            title=BIG_HALL_TITLE, defaults={"title_en": "Load test (Big Hall)", "artist": "Load test"}
        )
        performance, _ = Performance.objects.using(DB).get_or_create(
            concert=concert, venue=BIG_HALL_VENUE, defaults={"starts_at": starts_at}
        )
        existing = set(Seat.objects.using(DB).filter(performance=performance).values_list("label", flat=True))
        missing = [
            Seat(performance=performance, label=label, grade="S", price=BIG_HALL_PRICE)
            for label in (f"B-{number:06d}" for number in range(1, seats + 1))
            if label not in existing
        ]
        Seat.objects.using(DB).bulk_create(missing, batch_size=2000)
    return performance.id, len(missing)
