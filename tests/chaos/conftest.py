"""The chaos suite's load, settling and figures.

`make test` runs a short version of every fault; `make chaos` (CHAOS_SCALE=full) the long one whose
figures go in docs/RELIABILITY.md. Each test runs a steady booking load through the HTTP API while it
injects its fault, waits for every saga to settle, and checks the invariants with the audit.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.db.models import Sum

from tests.saga.conftest import TERMINAL, wait_for
from ticketing.audit.invariants import audit
from ticketing.concerts.models import Reservation, ReservationStatus
from ticketing.payments.models import EntryKind, Wallet, WalletEntry

FULL = os.environ.get("CHAOS_SCALE") == "full"
RESULTS: list[dict[str, Any]] = []


def scaled(short: float, full: float) -> float:
    return full if FULL else short


class BookingLoad:
    """Bookings at a steady rate from a thread: two users in three can pay, the third cannot.

    ``affordable`` says, for each accepted booking, whether its user could pay for it: a funded user's
    wallet holds far more than all their bookings cost, the others have no wallet at all.
    """

    def __init__(self, clients: list[Any], funded: list[bool], seat_ids: list[int], rate: float) -> None:
        self.clients = clients
        self.funded = funded
        self.seat_ids = seat_ids
        self.rate = rate
        self.accepted: list[int] = []
        self.affordable: dict[int, bool] = {}
        self.attempted = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> BookingLoad:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(60)

    def add(self, reservation_id: int, *, affordable: bool) -> None:
        self.accepted.append(reservation_id)
        self.affordable[reservation_id] = affordable

    def run(self) -> None:
        try:
            for n, seat_id in enumerate(self.seat_ids):
                if self.stopping.is_set():
                    return
                self.attempted += 1
                response = self.clients[n % len(self.clients)].post(
                    "/api/reservations/", {"seat_id": seat_id}, format="json"
                )
                if response.status_code == 202:
                    self.add(response.json()["id"], affordable=self.funded[n % len(self.clients)])
                time.sleep(max(0.0, self.started + (n + 1) / self.rate - time.monotonic()))
        finally:
            for connection in connections.all():
                connection.close()


@pytest.fixture
def load(make_user: Any, make_seats: Any, fund: Any, client_for: Any, settings: Any) -> Any:
    settings.BOOKING_RATE_PER_USER = "100000/min"  # a load test, not a person

    def start(seconds: float, rate: float = 15) -> BookingLoad:
        users = [make_user() for _ in range(12)]
        funded = [bool(index % 3) for index in range(len(users))]
        seats = make_seats(count=int(seconds * rate) + 10, price=10_000)
        for user, pays in zip(users, funded, strict=True):
            if pays:  # more than every seat of the load costs
                fund(user.id, 10_000 * len(seats) + 10_000)
        return BookingLoad([client_for(u) for u in users], funded, [s.id for s in seats], rate)

    return start


def settle_and_audit(name: str, load: BookingLoad, fault: str, timeout: float = 180) -> dict[str, Any]:
    """Wait for every accepted booking to reach a terminal state, then record the figures and audit."""

    def all_settled() -> bool:
        open_sagas = Reservation.objects.using("concerts").filter(id__in=load.accepted).exclude(status__in=TERMINAL)
        return not open_sagas.exclude(status=ReservationStatus.CANCELED).exists()

    try:
        wait_for(all_settled, timeout=timeout, what=f"{name}: every saga to settle")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; still open: {open_sagas_of(load)[:10]}") from None
    violations = wait_for_audit()
    figures = {
        "fault": fault,
        "bookings attempted": load.attempted,
        "bookings accepted": len(load.accepted),
        "sagas settled": Reservation.objects.using("concerts")
        .filter(id__in=load.accepted, status__in=TERMINAL)
        .count(),
        "invariant violations": len(violations),
        "worst settle seconds": worst_settle_seconds(load.accepted),
        "money in = money out": money_balances(),
        "outcomes not as afforded": len(unexpected := outcomes_not_as_afforded(load)),
    }
    RESULTS.append({"test": name, **figures})
    assert violations == []
    assert figures["money in = money out"]
    assert not unexpected, f"{len(unexpected)} bookings did not end as their users could afford: {unexpected[:10]}"
    return figures


def outcomes_not_as_afforded(load: BookingLoad) -> list[tuple[int, str, str]]:
    """Bookings whose end does not match their user's means: a user who could pay gets the seat, others do not.

    Money conservation and the audit alone pass a payment path that fails every payment (everything
    cancelled, every won still in its wallet); this catches it.
    """
    expected = {True: ReservationStatus.CONFIRMED, False: ReservationStatus.SYSTEM_CANCELED}
    rows = Reservation.objects.using("concerts").filter(id__in=load.accepted).values_list("id", "status", "reason")
    return [(pk, status, reason) for pk, status, reason in rows if status != expected[load.affordable[pk]]]


def open_sagas_of(load: BookingLoad) -> list[tuple[int, str, str]]:
    rows = Reservation.objects.using("concerts").filter(id__in=load.accepted).exclude(status__in=TERMINAL)
    return list(rows.exclude(status=ReservationStatus.CANCELED).values_list("id", "status", "saga_step"))


def wait_for_audit(timeout: float = 30) -> list[str]:
    """The audit once the system is idle (the last outbox rows may still be on their way)."""
    deadline = time.monotonic() + timeout
    while True:
        violations = audit(idle=True)
        if not violations or time.monotonic() > deadline:
            return violations
        time.sleep(0.5)


def worst_settle_seconds(ids: list[int]) -> float:
    rows = Reservation.objects.using("concerts").filter(id__in=ids, status__in=TERMINAL)
    worst = max((r.updated_at - r.created_at).total_seconds() for r in rows) if rows else 0.0
    return round(worst, 3)


def money_balances() -> bool:
    """Every won put in is either still in a wallet or paid for a confirmed seat."""
    topped_up = WalletEntry.objects.using("payments").filter(kind=EntryKind.TOPUP).aggregate(s=Sum("amount"))["s"]
    held = Wallet.objects.using("payments").aggregate(s=Sum("balance"))["s"]
    spent = (
        Reservation.objects.using("concerts").filter(status=ReservationStatus.CONFIRMED).aggregate(s=Sum("amount"))["s"]
    )
    return bool((topped_up or 0) == (held or 0) + (spent or 0))


def pause(low: float, high: float) -> None:
    time.sleep(random.uniform(low, high))


@pytest.fixture(scope="session", autouse=True)
def chaos_report() -> Iterator[None]:
    yield
    if RESULTS:
        out = Path(os.environ.get("CHAOS_RESULTS", Path(settings.VAR_DIR) / "chaos-results.json"))
        out.write_text(json.dumps(RESULTS, indent=2))
        print("\nchaos figures:\n" + "\n".join(json.dumps(r) for r in RESULTS))
