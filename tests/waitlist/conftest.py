"""The waiting list, without workers: seat-released is applied by calling its handler as the consumer would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.saga.conftest import audited  # noqa: F401  (the saga tests here end with the audit)
from ticketing.accounts.models import User
from ticketing.concerts.handlers import consumer
from ticketing.concerts.models import Performance, Reservation, Seat, WaitlistOffer
from ticketing.concerts.services import reservation_cancel, reservation_confirm, reservation_create
from ticketing.outbox.consume import consume
from ticketing.outbox.models import OutboxMessage


@dataclass
class SoldOut:
    performance: Performance
    seats: list[Seat]
    buyer: User
    bookings: list[Reservation]  # one confirmed booking per seat, all the buyer's


@pytest.fixture
def sold_out(make_user: Any, make_seats: Any) -> Callable[..., SoldOut]:
    """A performance whose ``count`` seats (grade A) are all sold, one confirmed booking each."""

    def make(count: int = 3, **seat_options: Any) -> SoldOut:
        seats = make_seats(count=count, price=40_000, **seat_options)
        buyer = make_user()
        bookings = []
        for seat in seats:
            reservation = reservation_create(user_id=buyer.id, seat_id=seat.id)
            reservation_confirm(reservation_id=reservation.id, payment_id=reservation.id)
            bookings.append(reservation)
        return SoldOut(seats[0].performance, seats, buyer, bookings)

    return make


def join(client: Any, performance: Performance, grade: str = "A", seats: Any = 1) -> Any:
    return client.post(f"/api/performances/{performance.id}/waitlist/", {"grade": grade, "seats": seats}, format="json")


def cancel(booking: Reservation) -> None:
    reservation_cancel(user_id=booking.user_id, reservation_id=booking.id)


def offer_freed_seat(show: SoldOut, waiter: User, client: Any) -> WaitlistOffer:
    """``waiter`` (signed in as ``client``) joins the line; the first booking is cancelled and its
    seat-released consumed: the offer of that seat to them."""
    join(client, show.performance)
    cancel(show.bookings[0])
    consume_seat_released()
    return WaitlistOffer.objects.using("concerts").get(user_id=waiter.id)


def consume_seat_released() -> int:
    """Consume every seat-released event in the concerts outbox as the concerts worker would (its inbox
    included), and mark it sent; the number consumed."""
    applied = 0
    for message in OutboxMessage.objects.using("concerts").filter(event="seat-released", state="PENDING"):
        applied += consume(message.envelope(), using="concerts", handlers=consumer.handlers)
        OutboxMessage.objects.using("concerts").filter(pk=message.pk).update(state="SENT")
    return applied


def seat_statuses(seats: list[Seat]) -> list[str]:
    return [Seat.objects.using("concerts").get(pk=seat.pk).status for seat in seats]
