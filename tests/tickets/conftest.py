"""Tickets and the door, without workers: the saga's confirmation is called as its consumer would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from ticketing.accounts.models import User
from ticketing.concerts.models import Reservation, Ticket
from ticketing.concerts.services import reservation_confirm, reservation_create
from ticketing.concerts.ticket_codes import ticket_code


@pytest.fixture
def confirmed(make_user: Any, make_seats: Any) -> Callable[..., Reservation]:
    """A CONFIRMED reservation of ``seats`` seats (its payment's id made up: payments is not involved)."""

    def make(user: User | None = None, seats: int = 1) -> Reservation:
        owner = user or make_user()
        chosen = make_seats(count=seats, price=40_000)
        reservation = reservation_create(user_id=owner.id, seat_ids=[seat.id for seat in chosen])
        reservation_confirm(reservation_id=reservation.id, payment_id=reservation.id)
        return Reservation.objects.using("concerts").get(pk=reservation.id)

    return make


def code_of(ticket: Ticket) -> str:
    return ticket_code(ticket_id=ticket.id, performance_id=ticket.performance_id, label=ticket.seat.label)


def tickets_of(reservation: Reservation) -> list[Ticket]:
    return list(Ticket.objects.using("concerts").filter(reservation=reservation).select_related("seat").order_by("id"))


@pytest.fixture
def door_staff(make_user: Any) -> User:
    """A user given the door permission (and nothing else)."""
    user = make_user()
    user.user_permissions.add(Permission.objects.get(content_type__app_label="concerts", codename="door"))
    return User.objects.get(pk=user.pk)  # fresh: permissions are cached on the instance


def check_in(client: Any, code: Any) -> Any:
    return client.post("/api/door/check-in/", {"code": code}, format="json")
