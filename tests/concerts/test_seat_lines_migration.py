"""The data migration that gives every reservation made before bookings of several seats its seat line."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.db import connections

from tests.conftest import all_databases
from ticketing.concerts.models import Reservation, ReservationSeat

pytestmark = [all_databases]

migration = importlib.import_module("ticketing.concerts.migrations.0004_onsale")


def test_each_old_reservation_gets_one_line_live_only_if_the_reservation_is(make_seats: Any) -> None:
    # given a confirmed and a cancelled reservation written the old way (a seat, no lines)
    live_seat, dead_seat = make_seats(count=2, price=70_000)
    confirmed = Reservation.objects.using("concerts").create(
        user_id=5, seat=live_seat, amount=70_000, status="CONFIRMED"
    )
    Reservation.objects.using("concerts").create(user_id=6, seat=dead_seat, amount=70_000, status="SYSTEM_CANCELED")

    # when the data migration runs
    migration.lines_for_existing_reservations(apps, SimpleNamespace(connection=connections["concerts"]))

    # then each has one line for its seat, with its user, performance and price; only the live one is live
    lines = ReservationSeat.objects.using("concerts").order_by("seat_id")
    assert [(line.seat_id, line.user_id, line.performance_id, line.price, line.live) for line in lines] == [
        (live_seat.id, 5, live_seat.performance_id, 70_000, True),
        (dead_seat.id, 6, dead_seat.performance_id, 70_000, False),
    ]
    assert [line.seat_id for line in confirmed.lines.all()] == [live_seat.id]
