from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from rest_framework.test import APIClient

from ticketing.concerts.models import Reservation

TERMINAL = {"CONFIRMED", "SYSTEM_CANCELED"}


def wait_for(condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def settled(reservation_id: int, timeout: float = 20) -> Reservation:
    """Wait until the reservation reaches a terminal state, and return it."""

    def terminal() -> Reservation | None:
        reservation = Reservation.objects.using("concerts").get(pk=reservation_id)
        return reservation if reservation.status in TERMINAL else None

    return wait_for(terminal, timeout, f"reservation {reservation_id} to settle")


def book(client: APIClient, seat_id: int) -> Any:
    return client.post("/api/reservations/", {"seat_id": seat_id}, format="json")


@pytest.fixture
def audited(workers: Any) -> Iterator[None]:
    """Every saga test ends by checking the invariants of docs/CONTRACT.md §6 across the three databases."""
    yield
    wait_for(lambda: not call_command_fails("audit_sagas", "--idle"), timeout=15, what="the audit to pass")


def call_command_fails(*args: str) -> bool:
    try:
        call_command(*args)
    except Exception:
        return True
    finally:
        for connection in connections.all():
            connection.close_if_unusable_or_obsolete()
    return False


def in_thread(work: Callable[[], Any]) -> Callable[[], None]:
    """``work`` as a thread's target: its database connections are closed when it ends."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    return run


class RowLock:
    """Hold a row lock from another connection until released, to freeze a worker mid-transaction."""

    def __init__(self, alias: str, sql: str) -> None:
        self.alias = alias
        self.release_event = threading.Event()
        self.locked = threading.Event()
        self.thread = threading.Thread(target=self.hold, args=(sql,), daemon=True)
        self.thread.start()
        assert self.locked.wait(10)

    def hold(self, sql: str) -> None:
        try:
            with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
                cursor.execute(sql)
                self.locked.set()
                self.release_event.wait(60)
        finally:
            connections[self.alias].close()

    def has_waiter(self) -> bool:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return bool(cursor.fetchone()[0])

    def release(self) -> None:
        self.release_event.set()
        self.thread.join(10)


@dataclass
class Booking:
    user: Any
    client: APIClient
    seat_id: int
    reservation_id: int


@pytest.fixture
def funded_user_with_seat(make_user: Any, make_seats: Any, fund: Any, client_for: Any) -> Any:
    """A user with 100,000 won and a free 40,000-won seat."""
    user = make_user()
    wallet = fund(user.id, 100_000)
    (seat,) = make_seats(price=40_000)
    return user, wallet, seat, client_for(user)


@pytest.fixture
def confirmed_booking(funded_user_with_seat: Any) -> Booking:
    user, _, seat, client = funded_user_with_seat
    reservation = settled(book(client, seat.id).json()["id"])
    assert reservation.status == "CONFIRMED"
    return Booking(user, client, seat.id, reservation.id)


@pytest.fixture
def stalled_payment(workers: Any, funded_user_with_seat: Any) -> Iterator[tuple[Booking, RowLock]]:
    """A booking whose payment is stuck inside the payments worker's transaction, on the wallet's lock."""
    user, wallet, seat, client = funded_user_with_seat
    locker = RowLock("payments", f"SELECT 1 FROM payments_wallet WHERE id = {wallet.id} FOR UPDATE")
    reservation_id = book(client, seat.id).json()["id"]
    wait_for(locker.has_waiter, what="the payments consumer to block on the wallet")
    yield Booking(user, client, seat.id, reservation_id), locker
    locker.release()
