"""Nothing changes on the wire: envelopes written before the catalogue are consumed after it, and a
payload that does not match its declaration becomes a dead letter naming the field."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import all_databases
from ticketing.concerts.handlers import consumer as concerts_consumer
from ticketing.concerts.models import Reservation
from ticketing.concerts.services import reservation_create
from ticketing.events.catalogue import CATALOGUE
from ticketing.events.schema import decode, encode
from ticketing.outbox.consume import consume, run_consumer
from ticketing.outbox.models import DeadLetter, InboxMessage, OutboxMessage
from ticketing.payments.handlers import consumer as payments_consumer
from ticketing.payments.models import Payment

# Each event's payloads exactly as its publishers have written them, from before the catalogue (string
# names, dicts) on, including the shapes older messages and replayed letters have: no payment_id, no
# reason, no hold_until. A new event adds its shape here; a changed one adds the new shape, never removes one.
PAYLOADS_BEFORE = {
    "user-registered": [{"user_id": 41}],
    "concert-reserve": [
        {"reservation_id": 7, "user_id": 41, "amount": 140_000},
        {"reservation_id": 7, "user_id": 41, "amount": 140_000, "hold_until": "2026-12-01T09:10:00.250000Z"},
    ],
    "reservation-canceled": [{"reservation_id": 7, "user_id": 41, "reason": "hold expired"}],
    "payment-success": [{"reservation_id": 7, "payment_id": 3}],
    "payment-fail": [{"reservation_id": 7, "reason": "insufficient balance"}, {"reservation_id": 7}],
    "payment-refund": [
        {"reservation_id": 7, "payment_id": 3, "reason": "canceled by user"},
        {"reservation_id": 7, "payment_id": None, "reason": "hold expired"},
        {"reservation_id": 7, "reason": "test"},
    ],
    "payment-refunded": [{"reservation_id": 7, "payment_id": 3, "amount": 140_000}],
    # seat-released came with the waiting list, written as a dict just before the catalogue took it in.
    "seat-released": [{"performance_id": 3, "seat_ids": [5, 6], "reason": "canceled by user"}],
}


def envelope_before(event: str, payload: dict[str, Any], correlation_id: str = "7") -> dict[str, Any]:
    """An envelope as OutboxMessage.envelope() wrote it before the catalogue (schema version 1)."""
    return {
        "event_id": str(uuid.uuid4()),
        "event": event,
        "schema_version": 1,
        "occurred_at": "2026-12-01T09:00:00+09:00",
        "aggregate_id": correlation_id,
        "correlation_id": correlation_id,
        "causation_id": None,
        "traceparent": None,
        "payload": payload,
    }


def test_every_declared_event_has_its_payloads_from_before_listed_here() -> None:
    assert set(PAYLOADS_BEFORE) == set(CATALOGUE.events)


@pytest.mark.parametrize(
    ("event", "payload"), [(e, p) for e, shapes in PAYLOADS_BEFORE.items() for p in shapes], ids=str
)
def test_a_payload_written_before_the_catalogue_decodes_to_its_declared_type(event: str, payload: dict) -> None:
    decoded = decode(CATALOGUE.events[event], payload)

    assert decoded.name == event
    written_again = encode(decoded)
    assert {field: written_again[field] for field in payload} == payload


@all_databases
def test_an_envelope_written_now_has_the_shape_of_one_written_before(make_user: Any, make_seats: Any) -> None:
    # given a booking, whose concert-reserve the new code writes to the outbox
    (seat,) = make_seats()
    reservation = reservation_create(user_id=make_user().id, seat_id=seat.id)
    row = OutboxMessage.objects.using("concerts").get(event="concert-reserve", aggregate_id=str(reservation.id))

    # when its envelope is read as the relay sends it
    now = row.envelope()

    # then it has the same keys and schema version as before, and its payload keeps every old field
    before = envelope_before("concert-reserve", PAYLOADS_BEFORE["concert-reserve"][0])
    assert set(now) == set(before)
    assert now["schema_version"] == before["schema_version"]
    assert set(before["payload"]) <= set(now["payload"])


@all_databases
def test_a_concert_reserve_written_before_the_change_is_charged_after_it(fund: Any) -> None:
    # given a funded wallet and a concert-reserve envelope as the old code wrote it
    fund(424_201, 200_000)
    old = envelope_before("concert-reserve", {"reservation_id": 990_001, "user_id": 424_201, "amount": 140_000})

    # when payments consumes it
    assert consume(old, using="payments", handlers=payments_consumer.handlers)

    # then the charge is made
    assert Payment.objects.using("payments").get(reservation_id=990_001).status == "SUCCEEDED"


@all_databases
def test_a_payment_success_written_before_the_change_confirms_after_it(make_user: Any, make_seats: Any) -> None:
    # given a pending reservation and a payment-success envelope as the old code wrote it
    (seat,) = make_seats()
    reservation = reservation_create(user_id=make_user().id, seat_id=seat.id)
    old = envelope_before("payment-success", {"reservation_id": reservation.id, "payment_id": 5}, str(reservation.id))

    # when concerts consumes it
    assert consume(old, using="concerts", handlers=concerts_consumer.handlers)

    # then the reservation is confirmed
    assert Reservation.objects.using("concerts").get(pk=reservation.pk).status == "CONFIRMED"


def delivery() -> Any:
    return SimpleNamespace(request=SimpleNamespace(delivery_info={"redelivered": False}, retries=0))


@all_databases
@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (
            {"reservation_id": 990_002, "user_id": 424_202, "amount": "140000"},
            "Expected `int`, got `str` - at `$.amount`",
        ),
        ({"reservation_id": 990_002, "amount": 140_000}, "Object missing required field `user_id`"),
        (
            {"reservation_id": 990_002, "user_id": True, "amount": 140_000},
            "Expected `int`, got `bool` - at `$.user_id`",
        ),
    ],
    ids=["amount-as-text", "user-missing", "user-as-boolean"],
)
def test_a_malformed_payload_is_a_dead_letter_naming_the_field(fund: Any, payload: dict, named: str) -> None:
    # given a concert-reserve whose payload does not match its declaration
    fund(424_202, 200_000)
    message = envelope_before("concert-reserve", payload)

    # when the payments consumer gets it
    run_consumer(delivery(), message, using="payments", handlers=payments_consumer.handlers)

    # then it is a dead letter that names the field, and nothing was charged or recorded as consumed
    letter = DeadLetter.objects.using("payments").get(pk=message["event_id"])
    assert f"concert-reserve {message['event_id']}: bad payload: concert-reserve: {named}" == letter.error
    assert not Payment.objects.using("payments").filter(reservation_id=990_002).exists()
    assert not InboxMessage.objects.using("payments").filter(pk=message["event_id"]).exists()
