"""A reservation's reason is one phrase of a small vocabulary: never an error's text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import all_databases
from ticketing.concerts.handlers import on_payment_fail
from ticketing.concerts.models import Reservation
from ticketing.concerts.services import reservation_create
from ticketing.events.catalogue import PaymentFail

pytestmark = [all_databases]


def pending_reservation(make_user: Any, make_seats: Any) -> Reservation:
    (seat,) = make_seats()
    return reservation_create(user_id=make_user().id, seat_id=seat.id)


@pytest.mark.parametrize(
    "internal",
    [
        'payment error: gave up after 3 retries: connection to server at "db.internal" (10.0.0.5) failed',
        "OperationalError('could not serialize access due to concurrent update')",
        'duplicate key value violates unique constraint "payments_payment_reservation_id_key"',
    ],
)
def test_a_payment_fail_with_internal_text_reads_payment_error(make_user: Any, make_seats: Any, internal: str) -> None:
    # given a pending reservation
    reservation = pending_reservation(make_user, make_seats)

    # when payments answers with a reason that carries an error's text
    on_payment_fail(PaymentFail(reservation_id=reservation.id, reason=internal))

    # then the user reads "payment error"
    reservation.refresh_from_db(using="concerts")
    assert (reservation.status, reservation.reason) == ("SYSTEM_CANCELED", "payment error")


@pytest.mark.parametrize("refusal", ["insufficient balance", "wallet missing", "amount mismatch", "payment error"])
def test_a_payment_refusal_keeps_its_phrase(make_user: Any, make_seats: Any, refusal: str) -> None:
    # given a pending reservation
    reservation = pending_reservation(make_user, make_seats)

    # when payments refuses it for a known reason
    on_payment_fail(PaymentFail(reservation_id=reservation.id, reason=refusal))

    # then the user reads that reason
    reservation.refresh_from_db(using="concerts")
    assert reservation.reason == refusal
