"""publish(): the outbox row joins the caller's transaction; the publish backend is the one place to change that."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from ticketing.events.catalogue import ConcertReserve, PaymentSuccess
from ticketing.events.schema import InvalidPayload
from ticketing.outbox.models import OutboxMessage
from ticketing.outbox.publish import OutboxError, publish

# Real transactions: whether publish() runs inside one is what is tested.
pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__")]

handed_over: list[tuple[OutboxMessage, str]] = []


def recording_backend(message: OutboxMessage, using: str) -> None:
    handed_over.append((message, using))


RESERVE = ConcertReserve(reservation_id=7, user_id=1, amount=50_000)


def test_an_event_published_in_a_transaction_that_rolls_back_leaves_no_row() -> None:
    # given a transaction that publishes an event and then fails
    with pytest.raises(RuntimeError), transaction.atomic(using="concerts"):
        publish(RESERVE, using="concerts", aggregate_id=7)
        raise RuntimeError("the booking failed after publishing")

    # then the event went with it
    assert not OutboxMessage.objects.using("concerts").exists()


def test_publish_outside_a_transaction_is_refused() -> None:
    # when an event is published with no transaction open on its database
    with pytest.raises(OutboxError, match=r"must run inside transaction\.atomic"):
        publish(RESERVE, using="concerts", aggregate_id=7)

    # then nothing was written
    assert not OutboxMessage.objects.using("concerts").exists()


@override_settings(OUTBOX_PUBLISH_BACKEND=f"{__name__}.recording_backend")
def test_another_publish_backend_gets_the_event_and_the_database_instead_of_the_outbox(
    request: Any,
) -> None:
    request.addfinalizer(handed_over.clear)
    # when an event is published with another backend configured
    with transaction.atomic(using="payments"):
        message = publish(PaymentSuccess(reservation_id=3, payment_id=9), using="payments", aggregate_id=9)

    # then the backend got the event, built as the outbox would have stored it, and no row was written
    assert handed_over == [(message, "payments")]
    assert message.envelope()["payload"] == {"reservation_id": 3, "payment_id": 9}
    assert message.correlation_id == "9"
    assert not OutboxMessage.objects.using("payments").exists()


def test_a_payload_that_does_not_match_its_declaration_is_refused_naming_the_field() -> None:
    # given a concert-reserve whose amount is text
    wrong = ConcertReserve(reservation_id=7, user_id=1, amount="50000")  # type: ignore[arg-type]

    # when it is published
    refused = pytest.raises(InvalidPayload, match=r"concert-reserve: Expected `int`, got `str` - at `\$\.amount`")
    with refused, transaction.atomic(using="concerts"):
        publish(wrong, using="concerts", aggregate_id=7)

    # then nothing was written
    assert not OutboxMessage.objects.using("concerts").exists()


def test_an_event_published_from_another_services_database_is_refused() -> None:
    # when payments' database would announce concerts' concert-reserve
    refused = pytest.raises(OutboxError, match="concert-reserve is published by concerts")
    with refused, transaction.atomic(using="payments"):
        publish(RESERVE, using="payments", aggregate_id=7)

    # then nothing was written
    assert not OutboxMessage.objects.using("payments").exists()
