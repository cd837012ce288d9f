"""The invariants of the saga (docs/CONTRACT.md §6), checked across the three service databases.

This is an operator's tool: the one place that reads every service's tables. Services never do.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from ticketing.concerts.models import LIVE_STATUSES, Reservation, ReservationStatus, Seat, SeatStatus
from ticketing.outbox.models import OutboxMessage, OutboxState
from ticketing.payments.models import EntryKind, Payment, PaymentStatus, Wallet, WalletEntry

RELAY_SLACK_SECONDS = 30

Row = dict[str, Any]
PaymentsByReservation = dict[int, list[Row]]


def audit(*, idle: bool = False) -> list[str]:
    """Every violation found, as a sentence naming the rows; an empty list means all invariants hold."""
    reservations: list[Row] = [
        dict(row)
        for row in Reservation.objects.using("concerts").values("id", "seat_id", "status", "amount", "created_at")
    ]
    payments: PaymentsByReservation = defaultdict(list)
    for payment in Payment.objects.using("payments").values("id", "reservation_id", "status", "amount"):
        payments[payment["reservation_id"]].append(dict(payment))
    return [
        *seats_held_once(reservations),
        *confirmed_paid_once(reservations, payments),
        *canceled_costs_nothing(reservations, payments),
        *payments_have_reservations(reservations, payments),
        *seat_status_matches(reservations),
        *ledger_balances(),
        *sagas_settle_in_time(reservations),
        *(outbox_drained() if idle else []),
    ]


def seats_held_once(reservations: list[Row]) -> list[str]:
    live = Counter(r["seat_id"] for r in reservations if r["status"] in LIVE_STATUSES)
    return [f"A6.1: seat {seat} has {n} live reservations" for seat, n in live.items() if n > 1]


def confirmed_paid_once(reservations: list[Row], payments: PaymentsByReservation) -> list[str]:
    found = []
    for r in reservations:
        if r["status"] != ReservationStatus.CONFIRMED:
            continue
        paid = [p for p in payments.get(int(r["id"]), []) if p["status"] == PaymentStatus.SUCCEEDED]
        if len(paid) != 1 or paid[0]["amount"] != r["amount"]:
            found.append(f"A6.2: CONFIRMED reservation {r['id']} has {len(paid)} successful payments of {r['amount']}")
    return found


def canceled_costs_nothing(reservations: list[Row], payments: PaymentsByReservation) -> list[str]:
    return [
        f"A6.3: {r['status']} reservation {r['id']} kept successful payment {p['id']}"
        for r in reservations
        if r["status"] not in LIVE_STATUSES
        for p in payments.get(int(r["id"]), [])
        if p["status"] == PaymentStatus.SUCCEEDED
    ]


def payments_have_reservations(reservations: list[Row], payments: PaymentsByReservation) -> list[str]:
    known = {r["id"] for r in reservations}
    return [
        f"A6.3: successful payment {p['id']} is for unknown reservation {reservation_id}"
        for reservation_id, rows in payments.items()
        if reservation_id not in known
        for p in rows
        if p["status"] == PaymentStatus.SUCCEEDED
    ]


def seat_status_matches(reservations: list[Row]) -> list[str]:
    live_by_seat = {r["seat_id"]: r["status"] for r in reservations if r["status"] in LIVE_STATUSES}
    expected = {None: SeatStatus.AVAILABLE, ReservationStatus.PENDING: SeatStatus.HELD}
    expected[ReservationStatus.CONFIRMED] = SeatStatus.SOLD
    found = []
    for seat_id, status in Seat.objects.using("concerts").values_list("id", "status"):
        live = live_by_seat.get(seat_id)
        if status != expected[live]:
            found.append(f"A6.4: seat {seat_id} is {status} but its live reservation is {live or 'none'}")
    return found


def ledger_balances() -> list[str]:
    sums: dict[int, int] = defaultdict(int)
    for row in WalletEntry.objects.using("payments").values("wallet_id", "kind").annotate(total=Sum("amount")):
        sign = -1 if row["kind"] == EntryKind.CHARGE else 1
        sums[row["wallet_id"]] += sign * row["total"]
    return [
        f"A6.5: wallet {wallet_id} (user {user_id}) holds {balance} but its ledger sums to {sums[wallet_id]}"
        for wallet_id, user_id, balance in Wallet.objects.using("payments").values_list("id", "user_id", "balance")
        if balance != sums[wallet_id]
    ]


def sagas_settle_in_time(reservations: list[Row]) -> list[str]:
    deadline = timezone.now() - timedelta(seconds=settings.RESERVATION_HOLD_SECONDS + RELAY_SLACK_SECONDS)
    return [
        f"A6.6: reservation {r['id']} is still PENDING since {r['created_at']}"
        for r in reservations
        if r["status"] == ReservationStatus.PENDING and r["created_at"] < deadline
    ]


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
