"""The waiting list on the real stack: seat-released travels the outbox, relay and broker to its consumer."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from tests.conftest import saga
from tests.saga.conftest import book, settled, wait_for
from ticketing.concerts.models import Seat, WaitlistOffer

from .conftest import join

pytestmark = [saga]


def offer_of(user: Any, status: str = "OPEN") -> WaitlistOffer | None:
    return WaitlistOffer.objects.using("concerts").filter(user_id=user.id, status=status).first()


def test_a_cancelled_seat_is_offered_accepted_and_confirmed(
    audited: None, make_seats: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a sold-out performance and someone on its waiting list
    (seat,) = make_seats(price=30_000)
    buyer, waiter = make_user(), make_user()
    fund(buyer.id, 100_000)
    fund(waiter.id, 100_000)
    sold = settled(book(client_for(buyer), seat.id).json()["id"])
    assert join(client_for(waiter), seat.performance).json()["position"] == 1

    # when the buyer cancels (refunded)
    assert client_for(buyer).post(f"/api/reservations/{sold.id}/cancel/").status_code == 200

    # then the consumer of seat-released offers the seat to the waiting person
    offer = wait_for(lambda: offer_of(waiter), what="the offer")
    assert Seat.objects.using("concerts").get(pk=seat.pk).status == "OFFERED"

    # and accepting it runs the saga to CONFIRMED, paid from the waiter's wallet
    response = client_for(waiter).post(f"/api/waitlist/offers/{offer.id}/accept/")
    assert response.status_code == 202, response.content
    assert settled(response.json()["id"]).status == "CONFIRMED"


def test_a_failed_payment_frees_the_seat_for_the_waiting_list_too(
    audited: None, make_seats: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given someone waiting for a seat that another person is booking without the money for it
    (seat,) = make_seats(price=30_000)
    broke, waiter = make_user(), make_user()
    reservation_id = book(client_for(broke), seat.id).json()["id"]
    assert join(client_for(waiter), seat.performance).status_code == 201

    # when the payment fails and the saga compensates
    assert settled(reservation_id).status == "SYSTEM_CANCELED"

    # then the freed seat is offered to the waiting person
    assert wait_for(lambda: offer_of(waiter), what="the offer").lines.get().seat_id == seat.id


def test_an_offer_not_taken_in_time_passes_to_the_next_in_line(
    audited: None, make_seats: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a seat offered to the first of two people waiting
    (seat,) = make_seats(price=30_000)
    buyer, first, second = make_user(), make_user(), make_user()
    fund(buyer.id, 100_000)
    sold = settled(book(client_for(buyer), seat.id).json()["id"])
    join(client_for(first), seat.performance)
    join(client_for(second), seat.performance)
    client_for(buyer).post(f"/api/reservations/{sold.id}/cancel/")
    offer = wait_for(lambda: offer_of(first), what="the first offer")

    # when its time runs out (beat's sweep lapses it)
    WaitlistOffer.objects.using("concerts").filter(pk=offer.pk).update(expires_at=timezone.now())

    # then the seat goes to the second person, and the first can no longer take it
    wait_for(lambda: offer_of(second), timeout=30, what="the offer to pass on")
    assert offer_of(first, status="LAPSED") is not None
    assert client_for(first).post(f"/api/waitlist/offers/{offer.id}/accept/").status_code == 409
