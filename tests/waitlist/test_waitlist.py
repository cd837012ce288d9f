"""Joining a waiting list, freed seats offered to the first entry they fit, accepting, lapsing."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from django.utils import timezone

from tests.conftest import all_databases, saga
from tests.saga.conftest import RowLock, in_thread, wait_for
from ticketing.audit.invariants import audit
from ticketing.concerts.handlers import consumer
from ticketing.concerts.models import OfferSeat, OfferStatus, Reservation, Seat, WaitlistOffer
from ticketing.concerts.services import reservation_create
from ticketing.concerts.waitlist import waitlist_offers_lapse
from ticketing.outbox.consume import consume
from ticketing.outbox.models import OutboxMessage

from .conftest import cancel, consume_seat_released, join, offer_freed_seat, seat_statuses

pytestmark = [all_databases]


def seat_findings() -> list[str]:
    """What the audit finds about seats and offers (payments are left out of these tests)."""
    return [line for line in audit() if line.startswith(("A6.1", "A6.4", "A6.9"))]


def test_people_join_a_sold_out_grade_in_order_and_a_repeat_keeps_the_place(
    sold_out: Any, make_user: Any, client_for: Any
) -> None:
    # given a sold-out performance
    show = sold_out()
    first, second = client_for(make_user()), client_for(make_user())

    # when two people join its waiting list, and the first joins again
    answers = [join(first, show.performance, seats=2), join(second, show.performance), join(first, show.performance)]

    # then they stand 1st and 2nd, and the repeat keeps the first place (and its count)
    assert [(a.status_code, a.json()["position"]) for a in answers] == [(201, 1), (201, 2), (200, 1)]
    assert answers[2].json()["seats"] == 2


def test_a_grade_with_free_seats_has_no_waiting_list(make_user: Any, make_seats: Any, client_for: Any) -> None:
    (seat,) = make_seats()
    response = join(client_for(make_user()), seat.performance)
    assert response.status_code == 409
    assert "book them" in response.json()["detail"]


def test_bad_requests_to_join_are_refused_naming_why(
    sold_out: Any, make_user: Any, client_for: Any, settings: Any
) -> None:
    show = sold_out()
    client = client_for(make_user())
    assert join(client, show.performance, seats=0).status_code == 400
    assert join(client, show.performance, seats="2").status_code == 400
    too_many = join(client, show.performance, seats=settings.MAX_SEATS_PER_USER + 1)
    assert too_many.status_code == 400 and "seats" in too_many.json()
    assert join(client, show.performance, grade=["A"]).status_code == 400
    missing = client.post(f"/api/performances/{show.performance.id}/waitlist/", {"seats": 1}, format="json")
    assert missing.status_code == 400 and "grade" in missing.json()
    assert join(client, show.performance, grade="VIP").status_code == 409
    unknown = client.post("/api/performances/987654/waitlist/", {"grade": "A", "seats": 1}, format="json")
    assert unknown.status_code == 404


def test_the_per_user_seat_limit_holds_when_joining(sold_out: Any, client_for: Any, settings: Any) -> None:
    # given a buyer holding 3 seats, with a limit of 4
    show = sold_out(count=3)
    settings.MAX_SEATS_PER_USER = 4

    # when they join for 2 more
    response = join(client_for(show.buyer), show.performance, seats=2)

    # then it is refused naming the limit
    assert response.status_code == 409
    assert response.json()["limit"] == "4"


def test_a_freed_seat_goes_to_the_first_entry_it_fits(sold_out: Any, make_user: Any, client_for: Any) -> None:
    # given a sold-out performance, someone waiting for 2 seats, then someone waiting for 1
    show = sold_out()
    pair, single = make_user(), make_user()
    join(client_for(pair), show.performance, seats=2)
    join(client_for(single), show.performance, seats=1)

    # when one booking is cancelled and its seat-released event consumed
    cancel(show.bookings[0])
    assert consume_seat_released() == 1

    # then the seat is offered to the one it fits (the second), held for them: everyone else sees it HELD
    (offer,) = WaitlistOffer.objects.using("concerts").all()
    assert (offer.user_id, offer.status) == (single.id, "OPEN")
    assert seat_statuses([show.seats[0]]) == ["OFFERED"]
    public = client_for(pair).get(f"/api/performances/{show.performance.id}/seats/").json()
    assert public[0]["status"] == "HELD"
    assert seat_findings() == []


def test_cancelling_publishes_seat_released_with_the_seats(sold_out: Any) -> None:
    # given a sold-out performance
    show = sold_out()

    # when a booking is cancelled
    cancel(show.bookings[0])

    # then concerts' outbox holds seat-released naming its performance and seat, in the saga
    row = OutboxMessage.objects.using("concerts").get(event="seat-released")
    seat_ids = [show.seats[0].id]
    assert row.payload == {"performance_id": show.performance.id, "seat_ids": seat_ids, "reason": "canceled by user"}
    assert row.correlation_id == str(show.bookings[0].id)


def test_a_seat_released_event_consumed_twice_makes_one_offer(sold_out: Any, make_user: Any, client_for: Any) -> None:
    # given a person waiting, and a cancellation's seat-released
    show = sold_out()
    join(client_for(make_user()), show.performance)
    cancel(show.bookings[0])
    envelope = OutboxMessage.objects.using("concerts").get(event="seat-released").envelope()

    # when the event is delivered twice
    delivered = [consume(envelope, using="concerts", handlers=consumer.handlers) for _ in range(2)]

    # then it is applied once: one offer
    assert delivered == [True, False]
    assert WaitlistOffer.objects.using("concerts").count() == 1


def test_an_offered_seat_cannot_be_booked_by_anyone_else(sold_out: Any, make_user: Any, client_for: Any) -> None:
    show = sold_out()
    waiter = make_user()
    offer_freed_seat(show, waiter, client_for(waiter))
    response = client_for(make_user()).post("/api/reservations/", {"seat_id": show.seats[0].id}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "The seat is HELD."


def test_a_second_freed_seat_completes_a_pair(sold_out: Any, make_user: Any, client_for: Any) -> None:
    # given someone waiting for 2 seats, and one seat freed (too few)
    show = sold_out()
    pair = make_user()
    join(client_for(pair), show.performance, seats=2)
    cancel(show.bookings[0])
    consume_seat_released()
    assert not WaitlistOffer.objects.using("concerts").exists()

    # when a second seat is freed
    cancel(show.bookings[1])
    consume_seat_released()

    # then both are offered to them together
    (offer,) = WaitlistOffer.objects.using("concerts").all()
    assert offer.user_id == pair.id
    assert sorted(offer.lines.values_list("seat_id", flat=True)) == [show.seats[0].id, show.seats[1].id]


def test_accepting_an_offer_books_its_seats_through_the_saga(sold_out: Any, make_user: Any, client_for: Any) -> None:
    # given an offer of a freed seat
    show = sold_out()
    waiter = make_user()
    client = client_for(waiter)
    offer_freed_seat(show, waiter, client)
    (offer,) = client.get("/api/waitlist/offers/").json()
    assert (offer["status"], offer["seat_ids"], offer["labels"]) == ("OPEN", [show.seats[0].id], ["A-1"])

    # when they accept it (twice: a retry)
    response = client.post(f"/api/waitlist/offers/{offer['id']}/accept/")
    again = client.post(f"/api/waitlist/offers/{offer['id']}/accept/")

    # then a PENDING reservation of that seat asks payments, once; the seat is HELD for it
    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["seat_ids"]) == ("PENDING", [show.seats[0].id])
    assert again.json()["id"] == response.json()["id"]
    booked = response.json()["id"]
    reserve = OutboxMessage.objects.using("concerts").filter(event="concert-reserve", aggregate_id=booked)
    assert reserve.count() == 1
    assert seat_statuses([show.seats[0]]) == ["HELD"]
    assert client.get("/api/waitlist/offers/").json()[0]["status"] == "ACCEPTED"


def test_only_its_person_may_accept_an_offer(sold_out: Any, make_user: Any, client_for: Any) -> None:
    show = sold_out()
    waiter = make_user()
    offer = offer_freed_seat(show, waiter, client_for(waiter))
    assert client_for(make_user()).post(f"/api/waitlist/offers/{offer.id}/accept/").status_code == 404


def test_an_offer_not_taken_in_time_passes_to_the_next_entry(sold_out: Any, make_user: Any, client_for: Any) -> None:
    # given an offer to the first in line, and a second person waiting
    show = sold_out()
    first, second = make_user(), make_user()
    join(client_for(first), show.performance)
    join(client_for(second), show.performance)
    cancel(show.bookings[0])
    consume_seat_released()
    offer = WaitlistOffer.objects.using("concerts").get()

    # when its time runs out and the sweep lapses it
    WaitlistOffer.objects.using("concerts").filter(pk=offer.pk).update(expires_at=timezone.now())
    assert waitlist_offers_lapse() == 1
    assert client_for(first).post(f"/api/waitlist/offers/{offer.id}/accept/").status_code == 409
    consume_seat_released()

    # then the seat is offered to the second person; the first's offer is LAPSED
    offers = {o.user_id: o.status for o in WaitlistOffer.objects.using("concerts").all()}
    assert offers == {first.id: OfferStatus.LAPSED, second.id: OfferStatus.OPEN}
    assert seat_statuses([show.seats[0]]) == ["OFFERED"]
    assert seat_findings() == []


def test_no_offer_outlives_the_performances_start(sold_out: Any, make_user: Any, client_for: Any) -> None:
    # given a performance starting in ten minutes (much less than an offer's time)
    show = sold_out(starts_in=timedelta(minutes=10))
    join(client_for(make_user()), show.performance)

    # when a seat is freed and offered
    cancel(show.bookings[0])
    consume_seat_released()

    # then the offer ends at the start
    assert WaitlistOffer.objects.using("concerts").get().expires_at == show.performance.starts_at


def test_accepting_past_the_per_user_limit_is_refused_and_the_offer_stays(
    sold_out: Any, make_user: Any, make_seats: Any, client_for: Any, settings: Any
) -> None:
    # given an offer to someone who meanwhile booked up to the limit
    show = sold_out()
    waiter = make_user()
    offer = offer_freed_seat(show, waiter, client_for(waiter))
    free = Seat.objects.using("concerts").create(performance=show.performance, label="B-1", grade="B", price=1000)
    reservation_create(user_id=waiter.id, seat_id=free.id)
    settings.MAX_SEATS_PER_USER = 1

    # when they accept it
    response = client_for(waiter).post(f"/api/waitlist/offers/{offer.id}/accept/")

    # then 409 naming the limit; the offer and its seat stay as they were
    assert response.status_code == 409
    assert response.json()["limit"] == "1"
    assert WaitlistOffer.objects.using("concerts").get().status == "OPEN"
    assert seat_statuses([show.seats[0]]) == ["OFFERED"]


def test_the_audit_names_an_offered_seat_without_an_open_offer(make_seats: Any) -> None:
    (seat,) = make_seats()
    Seat.objects.using("concerts").filter(pk=seat.pk).update(status="OFFERED")
    assert audit() == [f"A6.9: OFFERED seat {seat.id} is held for 0 open offers"]


def test_accepting_an_offer_that_holds_no_seats_is_a_409_and_books_nothing(
    sold_out: Any, make_user: Any, client_for: Any
) -> None:
    # given an open offer whose seat lines are gone (broken data)
    show = sold_out()
    waiter = make_user()
    offer = offer_freed_seat(show, waiter, client_for(waiter))
    OfferSeat.objects.using("concerts").filter(offer=offer).update(open=False)

    # when its person accepts it
    response = client_for(waiter).post(f"/api/waitlist/offers/{offer.id}/accept/")

    # then 409 naming the problem; no reservation, the offer stays open for an operator to see
    assert response.status_code == 409, response.content
    assert "holds no seats" in response.json()["detail"]
    assert not Reservation.objects.using("concerts").filter(user_id=waiter.id).exists()
    assert WaitlistOffer.objects.using("concerts").get().status == "OPEN"


@saga
def test_a_freed_seat_that_a_booking_is_locking_is_offered_once_the_booking_lets_go(
    sold_out: Any, make_user: Any, client_for: Any
) -> None:
    # given a person waiting, a freed seat, and a booking that has locked that seat for a moment
    show = sold_out()
    waiter = make_user()
    join(client_for(waiter), show.performance)
    cancel(show.bookings[0])
    booking = RowLock("concerts", f"SELECT 1 FROM concerts_seat WHERE id = {show.seats[0].id} FOR UPDATE")

    # when the seat-released event is consumed meanwhile, and the booking then ends without the seat
    consumer = threading.Thread(target=in_thread(consume_seat_released))
    consumer.start()
    wait_for(booking.has_waiter, what="the offer round to wait for the booking's lock")
    booking.release()
    consumer.join(20)

    # then the seat is offered to the waiting person, not left free beside them
    assert WaitlistOffer.objects.using("concerts").get().user_id == waiter.id
    assert seat_statuses([show.seats[0]]) == ["OFFERED"]


@saga
def test_a_join_waits_for_an_offer_round_in_progress(sold_out: Any, make_user: Any, client_for: Any) -> None:
    # given a sold-out performance whose offer round is in progress (its performance row locked)
    show = sold_out()
    offer_round = RowLock(
        "concerts", f"SELECT 1 FROM concerts_performance WHERE id = {show.performance.id} FOR NO KEY UPDATE"
    )
    answers: list[Any] = []

    # when someone joins the waiting list meanwhile, and a seat is freed before the round ends
    joiner = threading.Thread(target=in_thread(lambda: answers.append(join(client_for(make_user()), show.performance))))
    joiner.start()
    wait_for(offer_round.has_waiter, what="the join to wait for the offer round")
    cancel(show.bookings[0])
    offer_round.release()
    joiner.join(20)

    # then the join sees the free seat and says to book it, instead of waiting beside it
    (answer,) = answers
    assert answer.status_code == 409
    assert "book them" in answer.json()["detail"]
