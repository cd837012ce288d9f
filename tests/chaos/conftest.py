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
    """Bookings at a steady rate from a thread: two users in three can pay, the third cannot."""

    def __init__(self, clients: list[Any], seat_ids: list[int], rate: float) -> None:
        self.clients = clients
        self.seat_ids = seat_ids
        self.rate = rate
        self.accepted: list[int] = []
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
                    self.accepted.append(response.json()["id"])
                time.sleep(max(0.0, self.started + (n + 1) / self.rate - time.monotonic()))
        finally:
            for connection in connections.all():
                connection.close()


@pytest.fixture
def load(make_user: Any, make_seats: Any, fund: Any, client_for: Any, settings: Any) -> Any:
    settings.BOOKING_RATE_PER_USER = "100000/min"  # a load test, not a person

    def start(seconds: float, rate: float = 15) -> BookingLoad:
        users = [make_user() for _ in range(12)]
        for index, user in enumerate(users):
            if index % 3:
                fund(user.id, 10_000_000)
        seats = make_seats(count=int(seconds * rate) + 10, price=10_000)
        return BookingLoad([client_for(u) for u in users], [s.id for s in seats], rate)

    return start


def settle_and_audit(name: str, load: BookingLoad, fault: str, timeout: float = 180) -> dict[str, Any]:
    """Wait for every accepted booking to reach a terminal state, then record the figures and audit."""

    def all_settled() -> bool:
        open_sagas = Reservation.objects.using("concerts").filter(id__in=load.accepted).exclude(status__in=TERMINAL)
        return not open_sagas.exclude(status=ReservationStatus.CANCELED).exists()

    wait_for(all_settled, timeout=timeout, what=f"{name}: every saga to settle")
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
    }
    RESULTS.append({"test": name, **figures})
    assert violations == []
    assert figures["money in = money out"]
    return figures


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
