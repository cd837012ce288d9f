"""A reservation without seat lines never moves without its seats: the step fails loudly instead."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import all_databases
from ticketing.concerts.handlers import consumer as concerts
from ticketing.concerts.models import Reservation, ReservationSeat, Seat
from ticketing.concerts.services import reservation_create, reservation_expire_holds
from ticketing.outbox.consume import run_consumer
from ticketing.outbox.models import DeadLetter

pytestmark = [all_databases]


def without_lines(make_user: Any, make_seats: Any) -> Reservation:
    """A pending booking whose seat lines are gone (data written by hand, a bad migration)."""
    (seat,) = make_seats()
    reservation = reservation_create(user_id=make_user().id, seat_id=seat.id)
    ReservationSeat.objects.using("concerts").filter(reservation=reservation).delete()
    return reservation


def delivery() -> Any:
    return SimpleNamespace(request=SimpleNamespace(delivery_info={"redelivered": False}, retries=0))


def envelope(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event": event, "correlation_id": "1", "payload": payload}


@pytest.mark.parametrize(
    "event", [("payment-success", {"payment_id": 1}), ("payment-fail", {"reason": "insufficient balance"})], ids=str
)
def test_a_saga_step_on_a_reservation_without_seat_lines_is_a_dead_letter_naming_it(
    make_user: Any, make_seats: Any, event: tuple[str, dict[str, Any]]
) -> None:
    # given a pending reservation without seat lines
    reservation = without_lines(make_user, make_seats)
    name, extra = event
    message = envelope(name, {"reservation_id": reservation.id, **extra})

    # when concerts consumes the payment's outcome
    run_consumer(delivery(), message, using="concerts", handlers=concerts.handlers)

    # then the event is a dead letter that names the cause, and nothing moved: reservation and seat as before
    letter = DeadLetter.objects.using("concerts").get(pk=message["event_id"])
    assert f"reservation {reservation.id} has no seat lines" in letter.error
    reservation.refresh_from_db(using="concerts")
    assert reservation.status == "PENDING"
    assert Seat.objects.using("concerts").get(pk=reservation.seat_id).status == "HELD"


def test_the_sweeper_goes_on_past_a_reservation_without_seat_lines_and_says_so(
    make_user: Any, make_seats: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given two expired holds, the first without seat lines
    broken = without_lines(make_user, make_seats)
    (seat,) = make_seats()
    sound = reservation_create(user_id=make_user().id, seat_id=seat.id)

    # when the sweeper runs
    with caplog.at_level(logging.ERROR, logger="ticketing.concerts.services"):
        expired = reservation_expire_holds(hold_seconds=0)

    # then the sound one is compensated, the broken one stays as it was and is logged as an error
    assert expired == 1
    assert Reservation.objects.using("concerts").get(pk=sound.pk).status == "SYSTEM_CANCELED"
    assert Reservation.objects.using("concerts").get(pk=broken.pk).status == "PENDING"
    assert f"reservation {broken.id} cannot be compensated" in caplog.text


def test_cancelling_a_reservation_without_seat_lines_is_a_409_and_changes_nothing(
    make_user: Any, make_seats: Any, client_for: Any
) -> None:
    # given a pending reservation without seat lines
    user = make_user()
    (seat,) = make_seats()
    reservation = reservation_create(user_id=user.id, seat_id=seat.id)
    ReservationSeat.objects.using("concerts").filter(reservation=reservation).delete()

    # when its owner cancels it
    response = client_for(user).post(f"/api/reservations/{reservation.id}/cancel/")

    # then 409 naming the problem, and the reservation and its seat are as they were
    assert response.status_code == 409, response.content
    assert "seats cannot be found" in response.json()["detail"]
    reservation.refresh_from_db(using="concerts")
    assert reservation.status == "PENDING"
    assert Seat.objects.using("concerts").get(pk=reservation.seat_id).status == "HELD"
