"""Writes of the concerts service: booking, and the saga's confirm and compensate steps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ticketing.observability import metrics
from ticketing.outbox.publish import publish

from . import tickets, waiting_room
from .models import (
    LIVE_STATUSES,
    BookerLock,
    Concert,
    Performance,
    Reservation,
    ReservationSeat,
    ReservationStatus,
    SagaStep,
    Seat,
    SeatStatus,
)
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


class NotAdmitted(Exception):
    """A queued performance: the user has no admission from its waiting room."""


class InvalidTransition(Exception):
    pass


class ReservationNotFound(Exception):
    pass


class CannotCancel(Exception):
    """The reservation is in a state (or past a time) that a user cancellation cannot change."""


def check_transition(table: dict[str, set[str]], current: str, target: str) -> None:
    if target not in table[current]:
        raise InvalidTransition(f"{current} -> {target}")


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
        transaction.on_commit(
            lambda: waiting_room_tell(waiting_room.queue_booking_started, performance.id, user_id), using=DB
        )
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


def admission_check(*, performance_id: int, user_id: int) -> None:
    """Raises NotAdmitted, or WaitingRoomUnavailable when Redis is down (fail closed)."""
    if not waiting_room.queue_admitted(performance_id=performance_id, user_id=user_id):
        raise NotAdmitted("This performance has a waiting room: join its queue and book once admitted.")


def reservation_hold(*, user_id: int, performance: Performance, seat_ids: list[int]) -> Reservation:
    """Inside the booking's transaction: lock, check and hold every seat, or raise and hold none."""
    seats = {s.id: s for s in Seat.objects.using(DB).select_for_update().filter(pk__in=seat_ids).order_by("id")}
    if missing := [i for i in seat_ids if i not in seats or seats[i].performance_id != performance.id]:
        raise SeatNotFound(missing[0])
    if taken := [i for i in seat_ids if seats[i].status != SeatStatus.AVAILABLE]:
        raise SeatNotAvailable({i: seats[i].status for i in taken}, several=len(seat_ids) > 1)
    seats_per_user_check(user_id=user_id, performance=performance, adding=len(seat_ids))
    ordered = [seats[i] for i in seat_ids]
    reservation = Reservation.objects.using(DB).create(
        user_id=user_id, seat=ordered[0], amount=sum(seat.price for seat in ordered)
    )
    ReservationSeat.objects.using(DB).bulk_create(
        ReservationSeat(reservation=reservation, seat=seat, performance=performance, user_id=user_id, price=seat.price)
        for seat in ordered
    )
    for seat in ordered:
        seat_move(seat, SeatStatus.HELD)
    publish(
        "concert-reserve",
        {"reservation_id": reservation.id, "user_id": user_id, "amount": reservation.amount},
        using=DB,
        aggregate_id=reservation.id,
    )
    transaction.on_commit(metrics.saga_started, using=DB)
    return reservation


def seats_per_user_check(*, user_id: int, performance: Performance, adding: int) -> None:
    """Under the user's lock for the performance (a row every booking of theirs for it locks first)."""
    BookerLock.objects.using(DB).bulk_create(
        [BookerLock(user_id=user_id, performance=performance)], ignore_conflicts=True
    )
    BookerLock.objects.using(DB).select_for_update().get(user_id=user_id, performance=performance)
    live = ReservationSeat.objects.using(DB).filter(user_id=user_id, performance=performance, live=True).count()
    limit = settings.MAX_SEATS_PER_USER
    if live + adding > limit:
        raise SeatLimitReached(
            f"At most {limit} seats per user for one performance (MAX_SEATS_PER_USER); you hold {live} already."
        )


def seat_move(seat: Seat, target: str) -> None:
    check_transition(SEAT_TRANSITIONS, seat.status, target)
    seat.status = target
    seat.save(using=DB, update_fields=["status"])


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
        reservation_move(reservation, ReservationStatus.CONFIRMED, SagaStep.SUCCESS_PAYMENT)
        seats_move(reservation, SeatStatus.SOLD)
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
        reservation_move(reservation, ReservationStatus.SYSTEM_CANCELED, SagaStep.SYSTEM_CANCEL_PAYMENT, reason)
        seats_move(reservation, SeatStatus.AVAILABLE)
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
        reservation_move(reservation, ReservationStatus.CANCELED, SagaStep.USER_CANCEL_PAYMENT, CANCELED_BY_USER)
        seats_move(reservation, SeatStatus.AVAILABLE)
        if paid:
            reservation_request_refund(reservation, reason=CANCELED_BY_USER)
        else:
            admission_end_on_commit(reservation, confirmed=False)
    return reservation


def seats_move(reservation: Reservation, target: str) -> None:
    """Every seat of the reservation (locked, in id order); lines stay live only while it is."""
    seats = Seat.objects.using(DB).select_for_update().filter(reservation_lines__reservation=reservation)
    for seat in seats.order_by("id"):
        seat_move(seat, target)
    if reservation.status not in LIVE_STATUSES:
        ReservationSeat.objects.using(DB).filter(reservation=reservation).update(live=False)


def admission_end_on_commit(reservation: Reservation, *, confirmed: bool) -> None:
    performance = reservation.seat.performance
    if performance.queue:
        finished = partial(waiting_room.queue_saga_finished, confirmed=confirmed)
        transaction.on_commit(lambda: waiting_room_tell(finished, performance.id, reservation.user_id), using=DB)


def waiting_room_tell(action: Callable[..., None], performance_id: int, user_id: int) -> None:
    """After the commit, best effort: if Redis is down the admission simply runs out on its timer."""
    try:
        action(performance_id=performance_id, user_id=user_id)
    except waiting_room.WaitingRoomUnavailable:
        logger.warning("waiting room unreachable: admission of user %s ends on its timer", user_id)


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
    """The reservation, locked; its seats are locked after it (seats_move), never before."""
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


ONSALE_TITLE = "온세일 데모: 대기열 공연"
ONSALE_VENUE = "고척스카이돔 (waiting room demo)"


def demo_onsale_load(*, opens_at: datetime, starts_at: datetime) -> Performance:
    """The demo's queued performance, whose sales open at ``opens_at``: set again (and its waiting room
    emptied) at every load, so that each start of the demo shows the pre-queue, the opening and admission.
    """
    with transaction.atomic(using=DB):
        concert, _ = Concert.objects.using(DB).get_or_create(
            title=ONSALE_TITLE, defaults={"title_en": "On-sale day demo: a queued performance", "artist": "Demo"}
        )
        performance, _ = Performance.objects.using(DB).get_or_create(
            concert=concert, venue=ONSALE_VENUE, defaults={"starts_at": starts_at}
        )
        performance.queue, performance.sales_open_at = True, opens_at
        performance.save(using=DB, update_fields=["queue", "sales_open_at"])
        existing = set(Seat.objects.using(DB).filter(performance=performance).values_list("label", flat=True))
        Seat.objects.using(DB).bulk_create(
            Seat(performance=performance, label=f"{grade}-{number:02d}", grade=grade, price=price)
            for grade, price, count in DEMO_GRADES
            for number in range(1, count + 1)
            if f"{grade}-{number:02d}" not in existing
        )
    # On the embedded default the server is not up yet (it starts after the demo is loaded, empty).
    with suppress(waiting_room.WaitingRoomUnavailable):
        waiting_room.queue_reset(performance_id=performance.id)
    return performance


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
