from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
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
    """Every saga test ends by checking the invariants of DESIGN.md A6 across the three databases."""
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
