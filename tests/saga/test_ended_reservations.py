"""A dead letter of concert-reserve replayed after its reservation ended charges nothing (real workers)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from tests.conftest import saga
from ticketing.concerts.models import Reservation
from ticketing.concerts.services import reservation_cancel
from ticketing.outbox.models import InboxMessage, OutboxMessage
from ticketing.outbox.services import dead_letter_record, dead_letters_replay
from ticketing.payments.models import Payment, Wallet

from .conftest import book, wait_for

pytestmark = [saga]


def test_a_replayed_dead_letter_of_concert_reserve_charges_nothing_after_the_booking_was_cancelled(
    audited: None, workers: Any, funded_user_with_seat: Any
) -> None:
    user, wallet, seat, client = funded_user_with_seat
    with workers.paused("relay", "beat"):
        # given a booking whose concert-reserve payments could not handle: it is a dead letter there
        reservation_id = book(client, seat.id).json()["id"]
        request = OutboxMessage.objects.using("concerts").get(event="concert-reserve", aggregate_id=str(reservation_id))
        dead_letter_record(request.envelope(), error="gave up: the gateway timed out", using="payments")
        OutboxMessage.objects.using("concerts").filter(pk=request.pk).update(state="SENT", sent_at=timezone.now())

        # and its owner cancels it meanwhile (concerts tells payments, once the relay is back)
        reservation_cancel(user_id=user.id, reservation_id=reservation_id)
    wait_for(
        lambda: Payment.objects.using("payments").filter(reservation_id=reservation_id).exists(),
        what="payments to hear that the reservation ended",
    )

    # when an operator replays the dead letter
    assert dead_letters_replay(using="payments", event_ids=[request.event_id]) == 1
    wait_for(
        lambda: InboxMessage.objects.using("payments").filter(event_id=request.event_id).exists(),
        what="the replayed request to be consumed",
    )

    # then no money moved, and the booking stays cancelled
    assert Wallet.objects.using("payments").get(pk=wallet.pk).balance == wallet.balance
    payment = Payment.objects.using("payments").get(reservation_id=reservation_id)
    assert (payment.status, payment.amount, payment.reason) == ("FAILED", 0, "canceled by user")
    assert Reservation.objects.using("concerts").get(pk=reservation_id).status == "CANCELED"
