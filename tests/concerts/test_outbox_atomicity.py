"""An event is written in the same transaction as the state change it announces: both or neither."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from tests.conftest import all_databases
from ticketing.concerts import services
from ticketing.concerts.models import Reservation, Seat
from ticketing.outbox.models import OutboxMessage
from ticketing.outbox.publish import OutboxError, publish_unchecked


@all_databases
def test_a_failure_after_publishing_rolls_back_the_booking_and_its_event(make_user: Any, make_seats: Any) -> None:
    # given a free seat, and a failure right after the concert-reserve event was written
    (seat,) = make_seats()
    real_publish = services.publish

    def publish_then_fail(*args: Any, **kwargs: Any) -> Any:
        real_publish(*args, **kwargs)
        raise RuntimeError("crash after the outbox insert")

    # when the seat is booked
    with (
        mock.patch("ticketing.concerts.services.publish", side_effect=publish_then_fail) as patched,
        pytest.raises(RuntimeError, match="crash after the outbox insert"),
    ):
        services.reservation_create(user_id=make_user().id, seat_id=seat.id)

    # then the error propagates and nothing of the booking remains: no reservation, seat free, no event
    assert patched.called
    assert not Reservation.objects.using("concerts").filter(seat_id=seat.id).exists()
    assert Seat.objects.using("concerts").get(pk=seat.pk).status == "AVAILABLE"
    assert not OutboxMessage.objects.using("concerts").exists()


@all_databases
def test_a_successful_booking_commits_the_reservation_and_its_event_together(make_seats: Any) -> None:
    # given a free seat
    (seat,) = make_seats()

    # when it is booked through the service
    reservation = services.reservation_create(user_id=7, seat_id=seat.id)

    # then the reservation, the held seat and the event are all there
    assert Reservation.objects.using("concerts").filter(pk=reservation.pk).exists()
    assert Seat.objects.using("concerts").get(pk=seat.pk).status == "HELD"
    assert OutboxMessage.objects.using("concerts").filter(aggregate_id=str(reservation.pk)).count() == 1


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("alias", ["default", "concerts", "payments"])
def test_publishing_outside_a_transaction_is_refused(alias: str) -> None:
    # given no transaction open on the database

    # when an event is published
    with pytest.raises(OutboxError):
        publish_unchecked("probe", {"n": 1}, using=alias, aggregate_id=1)

    # then it is refused and nothing was written
    assert not OutboxMessage.objects.using(alias).exists()
