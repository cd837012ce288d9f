"""Refusals fail at once; transient gateway trouble is retried, and past a bound fails the payment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import current_app

from tests.conftest import saga
from ticketing.outbox.models import DeadLetter
from ticketing.outbox.services import dead_letters_replay
from ticketing.payments.gateways import fault_clear, fault_inject
from ticketing.payments.models import Payment, Wallet

from .conftest import book, settled, wait_for

pytestmark = [saga]


@pytest.fixture
def faults() -> Iterator[Any]:
    yield fault_inject
    fault_clear()


@pytest.fixture
def funded_booking(make_user: Any, make_seats: Any, fund: Any, client_for: Any) -> Any:
    def booking() -> tuple[int, int]:
        user = make_user()
        fund(user.id, 100_000)
        (seat,) = make_seats(price=40_000)
        return user.id, book(client_for(user), seat.id).json()["id"]

    return booking


@pytest.mark.parametrize("mode", ["error", "timeout"])
def test_a_transient_gateway_failure_is_retried_until_the_charge_goes_through(
    audited: None, faults: Any, funded_booking: Any, mode: str
) -> None:
    # given a gateway that fails twice, then works
    faults(mode, times=2, delay=0.2)

    # when a funded user books
    user_id, reservation_id = funded_booking()

    # then the consumer retried and the booking is confirmed, charged once
    assert settled(reservation_id).status == "CONFIRMED"
    assert Wallet.objects.using("payments").get(user_id=user_id).balance == 60_000


def test_a_slow_gateway_still_confirms(audited: None, faults: Any, funded_booking: Any) -> None:
    faults("slow", times=1, delay=1.0)
    _, reservation_id = funded_booking()
    assert settled(reservation_id).status == "CONFIRMED"


def test_a_gateway_that_keeps_failing_turns_into_the_failure_path(
    audited: None, faults: Any, funded_booking: Any
) -> None:
    # given a gateway that fails every time
    faults("error", times=1000)

    # when a funded user books
    user_id, reservation_id = funded_booking()

    # then after the bounded retries the booking is system-cancelled with the reason, and nothing is charged
    reservation = settled(reservation_id)
    assert reservation.status == "SYSTEM_CANCELED"
    assert reservation.reason == "payment error"
    assert Wallet.objects.using("payments").get(user_id=user_id).balance == 100_000
    assert Payment.objects.using("payments").get(reservation_id=reservation_id).status == "FAILED"


def test_a_malformed_message_becomes_a_dead_letter_and_the_worker_goes_on(audited: None, funded_booking: Any) -> None:
    # given a message on the payments queue that no handler can read
    event_id = str(uuid.uuid4())
    bad = {"event_id": event_id, "event": "concert-reserve", "correlation_id": "x", "payload": {"amount": 1}}
    current_app.send_task("payments.handle_event", args=[bad], queue="payments")

    # then it is set aside with its reason, visibly
    letter = wait_for(lambda: DeadLetter.objects.using("payments").filter(pk=event_id).first(), what="the letter")
    assert "bad payload" in letter.error

    # and the worker still serves bookings
    _, reservation_id = funded_booking()
    assert settled(reservation_id).status == "CONFIRMED"


def test_a_dead_letter_replayed_after_a_fix_is_consumed_once(audited: None) -> None:
    # given a dead letter: an event that could not be handled as it was
    envelope = {"event_id": str(uuid.uuid4()), "event": "user-registered", "correlation_id": "u", "payload": {}}
    current_app.send_task("payments.handle_event", args=[envelope], queue="payments")
    wait_for(lambda: DeadLetter.objects.using("payments").filter(pk=envelope["event_id"]).exists(), what="letter")

    # when it is repaired and replayed, twice
    envelope["payload"] = {"user_id": 424242}
    DeadLetter.objects.using("payments").filter(pk=envelope["event_id"]).update(envelope=envelope)
    assert dead_letters_replay(using="payments", event_ids=[envelope["event_id"]]) == 1
    assert dead_letters_replay(using="payments", event_ids=[envelope["event_id"]]) == 1

    # then its effect happens once
    wait_for(lambda: Wallet.objects.using("payments").filter(user_id=424242).exists(), what="the wallet")
    assert Wallet.objects.using("payments").filter(user_id=424242).count() == 1
    assert DeadLetter.objects.using("payments").get(pk=envelope["event_id"]).replayed_at is not None
