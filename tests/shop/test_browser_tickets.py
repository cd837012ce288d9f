"""After the sale, in a real browser on the real stack: a ticket with its QR code, the door checking it in, and
the waiting list of a sold-out performance."""

from __future__ import annotations

import io
from typing import Any

import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import saga
from tests.saga.conftest import book, settled, wait_for
from ticketing.concerts.models import Reservation, WaitlistOffer

from .conftest import book_in_page, seat_of

pytestmark = [saga]

PHONE = (390, 844)


def qr_codes_in(png: bytes) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_a_buyer_gets_a_ticket_and_the_door_checks_it_in_once(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any
) -> None:
    # given a person who books a seat and sees the booking confirmed
    buyer = make_user()
    fund(buyer.id, 100_000)
    person = visitor(buyer)
    seat = seat_of(performance, "R-03")
    person.go(f"/performances/{performance.id}/")
    book_in_page(person.page, seat)
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "CONFIRMED")

    # when they open their ticket
    person.page.locator("#tickets-link").click()

    # then it shows the concert (Korean first, then English), the seat, the holder and a QR code of its code
    ticket = person.page.locator("article.ticket")
    expect(ticket).to_have_count(1)
    expect(ticket.locator("h2")).to_have_text("봄밤 콘서트: 별이 빛나는 밤")
    expect(ticket.locator(".title-en")).to_have_text("Spring Night Concert: Starry Night")
    expect(ticket.locator(".ticket-seat")).to_have_text("R-03 (R)")
    expect(ticket.locator(".ticket-holder")).to_have_text(buyer.username)
    expect(ticket.locator("figure.qr svg path")).to_have_count(1)
    code = ticket.locator("figure.qr").get_attribute("data-code")
    assert code and code.startswith("T1.")
    expect(ticket.locator(".ticket-code")).to_have_text(code)
    assert qr_codes_in(ticket.locator("figure.qr").screenshot()) == [code]  # what a camera reads off the screen
    person.snap("1-ticket")

    # when door staff, on a phone, scan it (typed, as a hand scanner types it)
    staff = make_user()
    staff.is_superuser = True
    staff.save(using="default")
    door = visitor(staff, viewport=PHONE)
    door.go("/door/")
    door.page.get_by_label("티켓 코드").fill(code)
    door.page.get_by_role("button", name="입장 확인하기").click()

    # then the door admits it, naming the seat and the holder
    answer = door.page.locator("#door-answer")
    expect(answer).to_have_attribute("data-outcome", "admitted")
    expect(answer).to_contain_text(f"R-03 · {buyer.username}")
    first_time = answer.get_attribute("data-checked-in-at")
    assert first_time
    door.snap("2-admitted")

    # and a second scan is refused with the time of the first
    door.page.get_by_label("티켓 코드").fill(code)
    door.page.get_by_role("button", name="입장 확인하기").click()
    expect(answer).to_have_attribute("data-outcome", "refused")
    expect(answer).to_have_attribute("data-checked-in-at", first_time)
    shown = door.page.evaluate("iso => new Date(iso).toLocaleTimeString(document.documentElement.lang)", first_time)
    expect(answer).to_contain_text(f"이미 입장한 티켓입니다. 입장 시각: {shown}")
    door.snap("3-refused")

    # and the buyer's ticket now reads checked in
    person.page.reload()
    expect(ticket.locator(".ticket-status")).to_contain_text("입장 완료")


def test_the_door_page_is_only_for_door_staff(visitor: Any, make_user: Any) -> None:
    person = visitor(make_user())
    response = person.page.goto(person.base + "/door/")
    assert response is not None and response.status == 403


def test_sold_out_join_the_waiting_list_and_book_the_seat_someone_cancelled(
    audited: None, visitor: Any, make_performance: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a performance whose only seat is sold
    (seat,) = make_performance(count=1, price=30_000)
    buyer = make_user()
    fund(buyer.id, 100_000)
    sold = settled(book(client_for(buyer), seat.id).json()["id"])
    assert sold.status == "CONFIRMED"

    # when another person finds it sold out and joins its waiting list
    waiter = make_user()
    fund(waiter.id, 100_000)
    person = visitor(waiter)
    person.go(f"/performances/{seat.performance_id}/")
    person.page.get_by_role("button", name="대기자 명단에 등록").click()
    expect(person.page.locator("#waitlist-message")).to_contain_text("대기 순번: 1")
    person.snap("1-joined")

    # and the buyer cancels
    assert client_for(buyer).post(f"/api/reservations/{sold.id}/cancel/").status_code == 200

    # then the seat is offered to the waiting person in My bookings
    wait_for(lambda: WaitlistOffer.objects.using("concerts").filter(user_id=waiter.id).exists(), what="the offer")
    person.go("/bookings/")
    offer = person.page.locator("li.offer")
    expect(offer.locator(".offer-seats")).to_have_text("A-1")
    person.snap("2-offer")

    # and accepting it books the seat through the saga, to CONFIRMED
    offer.get_by_role("button", name="이 좌석 예매하기").click()
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "CONFIRMED")
    person.snap("3-confirmed")
    assert Reservation.objects.using("concerts").get(user_id=waiter.id).status == "CONFIRMED"
