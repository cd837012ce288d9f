"""The invariants of the saga (docs/CONTRACT.md §6), checked across the three service databases.

This is an operator's tool: the one place that reads every service's tables. Services never do.

It runs in bounded memory whatever the number of sagas: what one database can answer alone is asked
of it in SQL (seats, ledgers, deadlines), and the checks that need both concerts and payments stream
the reservations and the payments side by side, in id order, a chunk at a time (a merge join). Each
invariant reports at most MAX_REPORTED violations, then how many more it found.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from ticketing.concerts.models import (
    LIVE_STATUSES,
    CheckIn,
    CheckInOutcome,
    OfferSeat,
    OfferStatus,
    Reservation,
    ReservationSeat,
    ReservationStatus,
    Seat,
    SeatStatus,
    Ticket,
    TicketStatus,
)
from ticketing.outbox.models import OutboxMessage, OutboxState
from ticketing.payments.models import EntryKind, Payment, PaymentStatus, Wallet

RELAY_SLACK_SECONDS = 30
CONCERTS, PAYMENTS = "concerts", "payments"
CHUNK = 2000
MAX_REPORTED = 1000

Row = Mapping[str, Any]


class Findings:
    """The violations of one invariant: the first MAX_REPORTED named, the rest counted."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.named: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.named) < MAX_REPORTED:
            self.named.append(f"{self.code}: {text}")
        else:
            self.more += 1

    def report(self) -> list[str]:
        return [*self.named, *([f"{self.code}: ... and {self.more} more"] if self.more else [])]


def audit(*, idle: bool = False) -> list[str]:
    """Every violation found, as a sentence naming the rows; an empty list means all invariants hold."""
    with ExitStack() as stack:
        # One transaction per database: PostgreSQL's server-side cursors then stream, not materialize.
        for alias in (CONCERTS, PAYMENTS):
            stack.enter_context(transaction.atomic(using=alias))
        confirmed_paid, canceled_free, payments_known = saga_checks()
        return [
            *seats_held_once(),
            *confirmed_paid.report(),
            *canceled_free.report(),
            *payments_known.report(),
            *seat_status_matches(),
            *ledger_balances(),
            *sagas_settle_in_time(),
            *tickets_match_reservations(),
            *offered_seats_held_once(),
            *(outbox_drained() if idle else []),
        ]


# --- Seats: the one place that knows how a reservation holds its seats ------------------------------


def live_holdings() -> QuerySet[Any]:
    """One row per seat a live (PENDING or CONFIRMED) reservation holds: ``held_seat``, ``holder_status``.

    Both seat invariants read seats through this: a reservation holds its seats (one or several)
    through its ReservationSeat lines.
    """
    live = ReservationSeat.objects.using(CONCERTS).filter(reservation__status__in=LIVE_STATUSES).order_by()
    return live.annotate(held_seat=F("seat_id"), holder_status=F("reservation__status"))


def seats_held_once() -> list[str]:
    """A6.1, counted by the database."""
    found = Findings("A6.1")
    crowded = (
        live_holdings().values("held_seat").annotate(n=Count("*")).filter(n__gt=1).order_by("held_seat").iterator()
    )
    for row in crowded:
        found.add(f"seat {row['held_seat']} has {row['n']} live reservations")
    # The database's one-live-line-per-seat constraint trusts each line's flag: it must follow its reservation.
    live = Q(reservation__status__in=LIVE_STATUSES)
    flagged = ReservationSeat.objects.using(CONCERTS).filter((Q(live=True) & ~live) | (Q(live=False) & live))
    for seat, reservation, status, flag in (
        flagged.order_by("id").values_list("seat_id", "reservation_id", "reservation__status", "live").iterator()
    ):
        found.add(f"seat {seat} of {status} reservation {reservation} has live={flag}")
    return found.report()


def seat_status_matches() -> list[str]:
    """A6.4: each seat's status against its live holder's, compared by the database seat by seat."""
    holder = live_holdings().filter(held_seat=OuterRef("pk")).values("holder_status")[:1]
    expected = Case(
        When(holder=ReservationStatus.CONFIRMED, then=Value(SeatStatus.SOLD)),
        When(holder=ReservationStatus.PENDING, then=Value(SeatStatus.HELD)),
        # No live holder: free, or offered to the waiting list (whose seats A6.9 checks).
        When(status=SeatStatus.OFFERED, then=Value(SeatStatus.OFFERED)),
        default=Value(SeatStatus.AVAILABLE),
        output_field=CharField(),
    )
    mismatched = (
        Seat.objects.using(CONCERTS)
        .annotate(holder=Subquery(holder), expected=expected)
        .exclude(status=F("expected"))
        .order_by("id")
        .values_list("id", "status", "holder")
    )
    found = Findings("A6.4")
    for seat_id, status, live in mismatched.iterator(chunk_size=CHUNK):
        found.add(f"seat {seat_id} is {status} but its live reservation is {live or 'none'}")
    return found.report()


# --- Sagas: reservations (concerts) beside their payments (payments), streamed in id order ----------


def saga_checks() -> tuple[Findings, Findings, Findings]:
    """A6.2 and A6.3, over every reservation and payment, holding one chunk of each at a time."""
    confirmed_paid, canceled_free, payments_known = Findings("A6.2"), Findings("A6.3"), Findings("A6.3")
    for reservation, payment in side_by_side(reservations_in_id_order(), payments_in_reservation_order()):
        succeeded = payment is not None and payment["status"] == PaymentStatus.SUCCEEDED
        if reservation is None:
            if succeeded:
                assert payment is not None
                payments_known.add(
                    f"successful payment {payment['id']} is for unknown reservation {payment['reservation_id']}"
                )
            continue
        if reservation["status"] == ReservationStatus.CONFIRMED:
            paid = 1 if succeeded else 0
            if not paid or payment is None or payment["amount"] != reservation["amount"]:
                confirmed_paid.add(
                    f"CONFIRMED reservation {reservation['id']} has {paid} successful payments of "
                    f"{reservation['amount']}"
                )
        elif reservation["status"] not in LIVE_STATUSES and succeeded:
            assert payment is not None
            canceled_free.add(
                f"{reservation['status']} reservation {reservation['id']} kept successful payment {payment['id']}"
            )
    return confirmed_paid, canceled_free, payments_known


def reservations_in_id_order() -> Iterator[Row]:
    rows = Reservation.objects.using(CONCERTS).order_by("id").values("id", "status", "amount")
    return rows.iterator(chunk_size=CHUNK)


def payments_in_reservation_order() -> Iterator[Row]:
    """At most one payment per reservation (a unique index, which also gives the order)."""
    rows = Payment.objects.using(PAYMENTS).order_by("reservation_id").values("id", "reservation_id", "status", "amount")
    return rows.iterator(chunk_size=CHUNK)


def side_by_side(reservations: Iterator[Row], payments: Iterator[Row]) -> Iterator[tuple[Row | None, Row | None]]:
    """Each reservation with its payment (or None), and each payment without a reservation, in id order."""
    payment = next(payments, None)
    for reservation in reservations:
        while payment is not None and payment["reservation_id"] < reservation["id"]:
            yield None, payment
            payment = next(payments, None)
        if payment is not None and payment["reservation_id"] == reservation["id"]:
            yield reservation, payment
            payment = next(payments, None)
        else:
            yield reservation, None
    while payment is not None:
        yield None, payment
        payment = next(payments, None)


# --- What one database answers alone ----------------------------------------------------------------


def ledger_balances() -> list[str]:
    """A6.5: every wallet's balance against the sum of its ledger, summed by the database."""
    signed = Case(
        When(entries__kind=EntryKind.CHARGE, then=-F("entries__amount")),
        default=F("entries__amount"),
        output_field=BigIntegerField(),
    )
    wrong = (
        Wallet.objects.using(PAYMENTS)
        .annotate(ledger=Coalesce(Sum(signed), Value(0), output_field=BigIntegerField()))
        .exclude(balance=F("ledger"))
        .order_by("id")
        .values_list("id", "user_id", "balance", "ledger")
    )
    found = Findings("A6.5")
    for wallet_id, user_id, balance, ledger in wrong.iterator(chunk_size=CHUNK):
        found.add(f"wallet {wallet_id} (user {user_id}) holds {balance} but its ledger sums to {ledger}")
    return found.report()


def sagas_settle_in_time() -> list[str]:
    """A6.6, on the index of status and creation time."""
    deadline = timezone.now() - timedelta(seconds=settings.RESERVATION_HOLD_SECONDS + RELAY_SLACK_SECONDS)
    late = Reservation.objects.using(CONCERTS).filter(status=ReservationStatus.PENDING, created_at__lt=deadline)
    found = Findings("A6.6")
    for reservation_id, created_at in late.order_by("created_at").values_list("id", "created_at").iterator():
        found.add(f"reservation {reservation_id} is still PENDING since {created_at}")
    return found.report()


def tickets_match_reservations() -> list[str]:
    """A6.8: a checked-in ticket belongs to a CONFIRMED reservation and was admitted exactly once; a
    VALID ticket's reservation is CONFIRMED, a cancelled one's tickets are VOID; every seat of a
    CONFIRMED reservation has its ticket. The database picks the wrong rows."""
    admitted = (
        CheckIn.objects.using(CONCERTS)
        .filter(ticket=OuterRef("pk"), outcome=CheckInOutcome.ADMITTED)
        .order_by()
        .values("ticket")
        .annotate(n=Count("*"))
        .values("n")
    )
    confirmed = Q(holder=ReservationStatus.CONFIRMED)
    wrong = (
        Ticket.objects.using(CONCERTS)
        .annotate(holder=F("reservation__status"), admissions=Coalesce(Subquery(admitted), Value(0)))
        .filter(
            (Q(status=TicketStatus.CHECKED_IN) & (~confirmed | ~Q(admissions=1)))
            | (~Q(status=TicketStatus.CHECKED_IN) & ~Q(admissions=0))
            | (Q(status=TicketStatus.VALID) & ~confirmed)
            | (Q(status=TicketStatus.VOID) & confirmed)
        )
        .order_by("id")
        .values_list("id", "status", "reservation_id", "holder", "admissions")
    )
    found = Findings("A6.8")
    for ticket_id, status, reservation_id, holder, admissions in wrong.iterator(chunk_size=CHUNK):
        found.add(f"{status} ticket {ticket_id} of {holder} reservation {reservation_id}: admitted {admissions}x")
    ticket = Ticket.objects.using(CONCERTS).filter(reservation=OuterRef("reservation"), seat=OuterRef("seat"))
    unticketed = (
        ReservationSeat.objects.using(CONCERTS)
        .filter(reservation__status=ReservationStatus.CONFIRMED)
        .exclude(Exists(ticket))
        .order_by("id")
        .values_list("reservation_id", "seat_id")
    )
    for reservation_id, seat_id in unticketed.iterator(chunk_size=CHUNK):
        found.add(f"seat {seat_id} of CONFIRMED reservation {reservation_id} has no ticket")
    return found.report()


def offered_seats_held_once() -> list[str]:
    """A6.9: every OFFERED seat is held for exactly one open offer, and an open offer's seats are OFFERED."""
    open_lines = OfferSeat.objects.using(CONCERTS).filter(open=True, seat=OuterRef("pk")).order_by()
    holders = open_lines.values("seat").annotate(n=Count("*")).values("n")
    wrong = (
        Seat.objects.using(CONCERTS)
        .annotate(offers=Coalesce(Subquery(holders), Value(0)))
        .filter((Q(status=SeatStatus.OFFERED) & ~Q(offers=1)) | (~Q(status=SeatStatus.OFFERED) & ~Q(offers=0)))
        .order_by("id")
        .values_list("id", "status", "offers")
    )
    found = Findings("A6.9")
    for seat_id, status, offers in wrong.iterator(chunk_size=CHUNK):
        found.add(f"{status} seat {seat_id} is held for {offers} open offers")
    stale = OfferSeat.objects.using(CONCERTS).filter(
        (Q(open=True) & ~Q(offer__status=OfferStatus.OPEN)) | (Q(open=False) & Q(offer__status=OfferStatus.OPEN))
    )
    for seat_id, offer_id, status, flag in (
        stale.order_by("id").values_list("seat_id", "offer_id", "offer__status", "open").iterator(chunk_size=CHUNK)
    ):
        found.add(f"seat {seat_id} of {status} offer {offer_id} has open={flag}")
    return found.report()


def outbox_drained() -> list[str]:
    found = []
    for alias in settings.DATABASES:
        counts = dict(
            OutboxMessage.objects.using(alias).values_list("state").annotate(n=Count("id")).values_list("state", "n")
        )
        if counts.get(OutboxState.PENDING):
            found.append(f"A6.7: {counts[OutboxState.PENDING]} outbox rows of {alias} are still unsent")
    return found


def dead_outbox_rows() -> dict[str, int]:
    """Dead rows are not violations (they are visible in the admin), but the audit reports them."""
    return {
        alias: n
        for alias in settings.DATABASES
        if (n := OutboxMessage.objects.using(alias).filter(state=OutboxState.DEAD).count())
    }
