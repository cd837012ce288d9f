"""The booking page's progress comes from what concerts knows (its reservation, its outbox and inbox),
and says when the saga is over so that the page stops asking."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import all_databases
from ticketing.accounts.models import User
from ticketing.concerts.handlers import consumer as concerts
from ticketing.concerts.models import Reservation
from ticketing.concerts.services import reservation_cancel, reservation_create, reservation_expire_holds
from ticketing.outbox.consume import consume
from ticketing.outbox.models import OutboxMessage

pytestmark = [all_databases]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def a_booking(make_user: Any, make_seats: Any) -> tuple[User, Reservation]:
    user = make_user()
    (seat,) = make_seats()
    return user, reservation_create(user_id=user.id, seat_id=seat.id)


def request_sent(reservation: Reservation) -> None:
    """As the relay marks concert-reserve once the broker has it."""
    rows = OutboxMessage.objects.using("concerts").filter(event="concert-reserve", aggregate_id=str(reservation.id))
    rows.update(state="SENT", sent_at=timezone.now())


def payments_answers(reservation: Reservation, event: str, **payload: Any) -> None:
    """concerts consumes an answer of payments, as its worker would."""
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event": event,
        "correlation_id": str(reservation.id),
        "payload": {"reservation_id": reservation.id, **payload},
    }
    assert consume(envelope, using="concerts", handlers=concerts.handlers)


def status_of(user: User, reservation: Reservation) -> dict[str, Any]:
    response = logged_in(user).get(f"/bookings/{reservation.id}/status.json")
    assert response.status_code == 200
    return dict(response.json())


def step_states(html: str) -> dict[str, str]:
    """Each step of the rendered progress and its state (done, current, failed, todo)."""
    return {key: state for state, key in re.findall(r'class="step (\w+)" data-step="(\w+)"', html)}


def test_the_booking_status_reads_no_database_of_payments(make_user: Any, make_seats: Any) -> None:
    # given a booking that payments charged and concerts confirmed
    user, reservation = a_booking(make_user, make_seats)
    request_sent(reservation)
    payments_answers(reservation, "payment-success", payment_id=77)

    # when its owner's page asks for its progress
    with CaptureQueriesContext(connections["payments"]) as in_payments:
        status = status_of(user, reservation)

    # then it is answered from concerts alone: confirmed, every step done, and the saga over
    assert len(in_payments.captured_queries) == 0
    assert (status["status"], status["terminal"]) == ("CONFIRMED", True)
    assert step_states(status["html"]) == {"held": "done", "requested": "done", "paid": "done", "confirmed": "done"}


def test_a_pending_booking_shows_the_request_once_sent_and_keeps_the_page_asking(
    make_user: Any, make_seats: Any
) -> None:
    # given a pending booking whose payment request has not left concerts yet
    user, reservation = a_booking(make_user, make_seats)
    before = status_of(user, reservation)

    # when the relay hands the request to the broker
    request_sent(reservation)
    after = status_of(user, reservation)

    # then the request step goes from in progress to done, and the saga is not over
    assert step_states(before["html"])["requested"] == "current"
    assert step_states(after["html"])["requested"] == "done"
    assert step_states(after["html"])["paid"] == "current"
    assert before["terminal"] is after["terminal"] is False


def test_a_refused_payment_shows_the_refusal_and_ends_the_saga(make_user: Any, make_seats: Any) -> None:
    # given a booking whose payment payments refused
    user, reservation = a_booking(make_user, make_seats)
    request_sent(reservation)
    payments_answers(reservation, "payment-fail", reason="insufficient balance")

    # when its owner's page asks
    status = status_of(user, reservation)

    # then the refusal shows with its reason, the seat is released, and the saga is over
    assert (status["status"], status["terminal"]) == ("SYSTEM_CANCELED", True)
    assert step_states(status["html"])["refused"] == "failed"
    assert step_states(status["html"])["released"] == "done"


def test_a_payment_that_came_after_the_hold_expired_keeps_the_page_asking_until_it_is_refunded(
    make_user: Any, make_seats: Any
) -> None:
    # given a booking whose hold expired, and whose payment reached concerts after that
    user, reservation = a_booking(make_user, make_seats)
    request_sent(reservation)
    reservation_expire_holds(hold_seconds=0)
    payments_answers(reservation, "payment-success", payment_id=78)
    while_refunding = status_of(user, reservation)

    # when the refund is announced
    payments_answers(reservation, "payment-refunded", payment_id=78, amount=reservation.amount)
    refunded = status_of(user, reservation)

    # then the page shows the refund under way and keeps asking, then shows it done and stops
    assert (while_refunding["terminal"], step_states(while_refunding["html"])["refunded"]) == (False, "current")
    assert (refunded["terminal"], step_states(refunded["html"])["refunded"]) == (True, "done")


def test_a_booking_its_owner_cancelled_before_paying_is_over_at_once(make_user: Any, make_seats: Any) -> None:
    user, reservation = a_booking(make_user, make_seats)

    reservation_cancel(user_id=user.id, reservation_id=reservation.id)
    status = status_of(user, reservation)

    assert (status["status"], status["terminal"]) == ("CANCELED", True)
    assert "refunded" not in step_states(status["html"])
