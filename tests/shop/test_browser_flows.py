"""A person books in a real browser and watches the saga finish, on the real stack (workers included)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from django.test import override_settings
from playwright.sync_api import expect

from tests.conftest import PASSWORD, ROOT, saga, unique
from tests.saga.conftest import book, settled, wait_for
from ticketing.accounts.models import User
from ticketing.concerts import waiting_room
from ticketing.concerts.models import Performance, Reservation
from ticketing.payments.models import Wallet

from .conftest import book_in_page, seat_button, seat_of

pytestmark = [saga]

# The waiting room as the guide (docs/GUIDE.md) shows it (refreshed by the test that walks through it).
WAITING_ROOM_SCREENSHOT = ROOT / "docs" / "shop-waiting-room.png"


def balance_of(user_id: int) -> int:
    return Wallet.objects.using("payments").get(user_id=user_id).balance


def test_a_person_signs_up_tops_up_books_and_sees_confirmed_without_reloading(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a concert where two seats are sold already
    buyer = make_user()
    fund(buyer.id, 200_000)
    for label in ("VIP-03", "R-07"):
        assert settled(book(client_for(buyer), seat_of(performance, label).id).json()["id"]).status == "CONFIRMED"
    # and a newcomer on the sign-up page
    person = visitor()
    username = unique("kim")
    person.go("/signup/")
    person.page.get_by_label("아이디").fill(username)
    person.page.get_by_label("비밀번호").fill(PASSWORD)
    person.snap("1-signup")
    person.page.get_by_role("button", name="회원가입").click()
    user = User.objects.get(username=username)

    # when they top up 100,000 won
    person.go("/wallet/")
    person.page.get_by_label("충전 금액 (원)").fill("100000")
    person.page.get_by_role("button", name="충전하기").click()
    expect(person.page.locator("#balance")).to_have_text("100,000원")
    person.snap("2-wallet-topped-up")

    # and book a 40,000-won seat on the seat map
    seat = seat_of(performance, "R-02")
    person.go(f"/performances/{performance.id}/")
    seat_button(person.page, seat).click()
    expect(person.page.locator("#choice-text")).to_contain_text("R-02")
    person.snap("3-seat-map")
    navigations: list[str] = []
    person.page.on("framenavigated", lambda frame: navigations.append(frame.url))
    person.page.locator("#book").click()

    # then the booking page shows the saga reach CONFIRMED by itself, with the time of every step
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "CONFIRMED")
    expect(person.page.locator("#headline")).to_contain_text("예매가 확정되었습니다")
    for step in ("held", "requested", "paid", "confirmed"):
        expect(person.page.locator(f'.step.done[data-step="{step}"] time')).to_have_count(1)
    person.snap("4-booking-confirmed")
    assert len([url for url in navigations if "/bookings/" in url]) == 1  # no reload after the booking page
    # and, the saga over, the page stops asking for its status (it polled every second until then)
    polls: list[str] = []
    person.page.on("request", lambda request: polls.append(request.url) if "/status.json" in request.url else None)
    person.page.wait_for_timeout(2500)
    assert polls == []
    # and the balance dropped by the price
    assert balance_of(user.id) == 60_000
    person.go("/wallet/")
    expect(person.page.locator("#balance")).to_have_text("60,000원")
    expect(person.page.locator("tr.entry.charge .amount")).to_have_text("\u221240,000원")  # a minus sign
    person.snap("5-wallet-charged")


def test_another_person_sees_the_seat_sold_without_reloading(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a second person looking at the seat map
    watcher = visitor()
    seat = seat_of(performance, "VIP-01")
    watcher.go(f"/performances/{performance.id}/")
    expect(seat_button(watcher.page, seat)).to_be_enabled()
    watcher.snap("1-before")

    # when someone else books that seat and the saga confirms it
    buyer = make_user()
    fund(buyer.id, 100_000)
    assert settled(book(client_for(buyer), seat.id).json()["id"]).status == "CONFIRMED"

    # then the watcher's map shows it sold, by symbol and label as well as colour, without a reload
    button = seat_button(watcher.page, seat)
    expect(button).to_have_attribute("data-status", "SOLD")
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("aria-label", "VIP-01, VIP, 90,000원, 판매 완료")
    expect(button.locator(".mark")).to_have_text("✕")
    expect(watcher.page.locator('[data-left-grade="VIP"]')).to_have_text("5")
    watcher.snap("2-sold")


def test_not_enough_money_shows_the_system_cancellation_with_its_reason_and_frees_the_seat(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any
) -> None:
    # given a person with 10,000 won
    user = make_user()
    fund(user.id, 10_000)
    person = visitor(user)
    seat = seat_of(performance, "R-01")

    # when they book a 40,000-won seat
    person.go(f"/performances/{performance.id}/")
    book_in_page(person.page, seat)

    # then the booking page shows it cancelled by the system, and why, in plain words
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "SYSTEM_CANCELED")
    expect(person.page.locator("#headline")).to_contain_text("시스템에 의해 예매가 취소되었습니다")
    expect(person.page.locator(".reason")).to_contain_text("지갑 잔액이 부족합니다")
    expect(person.page.locator('.step.failed[data-step="refused"]')).to_have_count(1)
    expect(person.page.locator('.step[data-step="released"] time')).to_have_count(1)
    expect(person.page.locator("#cancel")).to_be_hidden()
    person.snap("1-refused")
    assert balance_of(user.id) == 10_000

    # and the seat is available again on the map
    person.page.get_by_role("link", name="좌석 배치도로 돌아가기").click()
    expect(seat_button(person.page, seat)).to_be_enabled()
    expect(seat_button(person.page, seat)).to_have_attribute("aria-label", "R-01, R, 40,000원, 예매 가능")
    person.snap("2-seat-available-again")


def test_cancelling_a_confirmed_booking_shows_the_refund_in_the_ledger(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a person with a confirmed 90,000-won booking
    user = make_user()
    fund(user.id, 100_000)
    reservation = settled(book(client_for(user), seat_of(performance, "VIP-02").id).json()["id"])
    assert reservation.status == "CONFIRMED"
    person = visitor(user)
    person.go("/bookings/")
    expect(person.page.locator(".booking-item .badge")).to_have_text("예매 확정")
    person.snap("1-my-bookings")

    # when they cancel it on its page
    person.page.locator(".booking-item a.booking-link").click()
    person.page.once("dialog", lambda dialog: dialog.accept())
    person.page.locator("#cancel").click()

    # then the page follows it to the refund
    expect(person.page.locator(".progress")).to_have_attribute("data-terminal", "true")
    expect(person.page.locator('.step.done[data-step="refunded"] time')).to_have_count(1)
    person.snap("2-refunded")
    # and the ledger shows the refund, the balance whole again
    person.go("/wallet/")
    expect(person.page.locator("tr.entry.refund .amount")).to_have_text("+90,000원")
    expect(person.page.locator("#balance")).to_have_text("100,000원")
    person.snap("3-ledger")


def test_a_seat_taken_meanwhile_gets_a_clear_message_and_the_choice_is_cleared(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a person who picked a seat
    user = make_user()
    fund(user.id, 100_000)
    person = visitor(user)
    seat = seat_of(performance, "R-03")
    person.go(f"/performances/{performance.id}/")
    seat_button(person.page, seat).click()

    # when someone else books it first
    other = make_user()
    fund(other.id, 100_000)
    assert book(client_for(other), seat.id).status_code == 202

    # then the page says so (from the live map or from the 409), and nothing is booked for this person
    expect(person.page.locator("#message")).to_contain_text("다른 분이 이 좌석을 선택했습니다")
    expect(seat_button(person.page, seat)).to_have_attribute("aria-pressed", "false")
    expect(person.page.locator("#book")).to_be_disabled()
    person.snap("1-taken")
    assert not Reservation.objects.using("concerts").filter(user_id=user.id).exists()


def test_a_double_click_books_once(audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any) -> None:
    # given a funded person with a seat chosen
    user = make_user()
    fund(user.id, 100_000)
    person = visitor(user)
    person.go(f"/performances/{performance.id}/")
    seat_button(person.page, seat_of(performance, "R-04")).click()

    # when they double-click the book button
    person.page.locator("#book").dblclick()

    # then one booking is made and confirmed
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "CONFIRMED")
    assert Reservation.objects.using("concerts").filter(user_id=user.id).count() == 1
    assert balance_of(user.id) == 60_000


def test_the_english_pages_render_the_whole_flow(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any
) -> None:
    # given a funded person on the Korean concert list, on a phone-sized screen
    user = make_user()
    fund(user.id, 50_000)
    person = visitor(user, viewport=(390, 844))
    person.go("/")
    expect(person.page.get_by_role("heading", name=performance.concert.title)).to_be_visible()

    # when they switch to English
    person.page.get_by_role("button", name="English").click()
    expect(person.page.get_by_role("heading", name=performance.concert.title_en)).to_be_visible()
    person.snap("1-concerts")
    person.page.get_by_role("link", name=f"Choose seats — {performance.concert.title_en}").click()
    expect(person.page.get_by_role("heading", name="Seat map")).to_be_visible()
    # and choose and book R-01 with the keyboard alone: into the map, down a row, then Space and Tab
    seat_button(person.page, seat_of(performance, "VIP-01")).focus()  # the map's one tab stop
    person.page.keyboard.press("ArrowDown")
    expect(seat_button(person.page, seat_of(performance, "R-01"))).to_be_focused()
    person.page.keyboard.press("Space")
    expect(person.page.locator("#choice-text")).to_contain_text("R-01")
    person.snap("2-seat-map")
    person.page.keyboard.press("Tab")
    expect(person.page.locator("#book")).to_be_focused()  # the next stop after the map
    person.page.keyboard.press("Enter")

    # then the booking, the bookings list and the wallet all speak English
    expect(person.page.locator("#headline")).to_contain_text("Your booking is confirmed.")
    person.snap("3-confirmed")
    person.go("/bookings/")
    expect(person.page.locator(".booking-item .badge")).to_have_text("Confirmed")
    person.go("/wallet/")
    expect(person.page.locator("#balance")).to_have_text("₩10,000")
    expect(person.page.locator("tr.entry.charge td").nth(1)).to_have_text("Payment")
    person.snap("4-wallet")
    wait_for(lambda: balance_of(user.id) == 10_000, what="the charge")


def test_a_retry_after_a_lost_answer_books_once(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any
) -> None:
    # given a funded person with a seat chosen, whose first booking's answer will be lost on the way back
    user = make_user()
    fund(user.id, 100_000)
    person = visitor(user)
    person.go(f"/performances/{performance.id}/")
    seat_button(person.page, seat_of(performance, "S-01")).click()

    def lose_the_answer(route: Any) -> None:
        route.fetch()  # the server gets the booking and answers
        route.abort("connectionreset")  # but the page never hears it

    person.page.route("**/api/reservations/", lose_the_answer)

    # when the booking seems to fail with a network error
    person.page.locator("#book").click()
    expect(person.page.locator("#message")).to_contain_text("서버에 연결하지 못했습니다")
    person.snap("1-network-error")
    assert Reservation.objects.using("concerts").filter(user_id=user.id).count() == 1

    # and the person presses the button again once the network is back
    person.page.unroute("**/api/reservations/")
    person.page.locator("#book").click()

    # then they get the booking they already made, not a second one
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "CONFIRMED")
    assert Reservation.objects.using("concerts").filter(user_id=user.id).count() == 1
    assert balance_of(user.id) == 70_000


def test_a_person_books_two_seats_in_one_booking_and_sees_both_sold(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any
) -> None:
    # given a funded person on the seat map
    user = make_user()
    fund(user.id, 100_000)
    person = visitor(user)
    seats = [seat_of(performance, "R-08"), seat_of(performance, "R-09")]
    person.go(f"/performances/{performance.id}/")

    # when they choose two seats and book them
    for seat in seats:
        seat_button(person.page, seat).click()
    expect(person.page.locator("#choice-text")).to_contain_text("R-08")
    expect(person.page.locator("#choice-text")).to_contain_text("R-09")
    person.page.locator("#book").click()

    # then one booking of both seats is confirmed, and the map shows both sold
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "CONFIRMED")
    expect(person.page.locator(".facts")).to_contain_text("R-08 (R), R-09 (R)")
    person.snap("1-confirmed")
    assert Reservation.objects.using("concerts").filter(user_id=user.id).count() == 1
    assert balance_of(user.id) == 20_000
    person.page.get_by_role("link", name="좌석 배치도로 돌아가기").click()
    for seat in seats:
        expect(seat_button(person.page, seat)).to_have_attribute("data-status", "SOLD")
    person.snap("2-both-sold")


@override_settings(QUEUE_ACTIVE_USERS=1)
def test_in_the_waiting_room_a_person_sees_their_place_and_books_once_admitted(
    audited: None, visitor: Any, performance: Any, make_user: Any, fund: Any, client_for: Any
) -> None:
    # given a queued performance of one place, taken by someone who will book
    Performance.objects.using("concerts").filter(pk=performance.id).update(queue=True)
    queue = f"/api/performances/{performance.id}/queue/"
    first = make_user()
    fund(first.id, 100_000)
    first_client = client_for(first)
    assert first_client.post(queue).json()["admitted"] is True
    # and a funded person on the performance's page
    user = make_user()
    fund(user.id, 100_000)
    person = visitor(user)
    person.go(f"/performances/{performance.id}/")
    expect(person.page.locator("#seatmap")).to_be_hidden()

    # when they join the queue, then they see their place and an estimated wait
    person.page.get_by_role("button", name="대기열 들어가기").click()
    expect(person.page.locator("#queue-place")).to_have_text("내 대기 순서: 1")
    expect(person.page.locator("#queue-wait")).to_contain_text("예상 대기 시간")
    person.snap("1-waiting")
    WAITING_ROOM_SCREENSHOT.write_bytes(person.page.screenshot(full_page=True))

    # when the one admitted books and the saga confirms it, the place passes on (the page polls)
    assert settled(book(first_client, seat_of(performance, "S-01").id).json()["id"]).status == "CONFIRMED"
    expect(person.page.locator("#queue-place")).to_contain_text("내 차례입니다")
    expect(person.page.locator("#seatmap")).to_be_visible()
    person.snap("2-admitted")

    # then they book on the seat map and see it confirmed
    book_in_page(person.page, seat_of(performance, "S-02"))
    expect(person.page.locator(".progress")).to_have_attribute("data-status", "CONFIRMED")
    person.snap("3-confirmed")


@override_settings(QUEUE_ADMISSION_SECONDS=2)
def test_an_admission_that_ended_sends_the_person_back_to_the_queue(
    visitor: Any, performance: Any, make_user: Any
) -> None:
    # given a person admitted from the waiting room for two seconds, with a seat chosen
    Performance.objects.using("concerts").filter(pk=performance.id).update(queue=True)
    person = visitor(make_user())
    person.go(f"/performances/{performance.id}/")
    person.page.get_by_role("button", name="대기열 들어가기").click()
    expect(person.page.locator("#seatmap")).to_be_visible()
    seat_button(person.page, seat_of(performance, "S-03")).click()

    # when they book after the admission ended
    wait_for(lambda: not queue_admitted(performance.id, person), what="the admission to end")
    person.page.locator("#book").click()

    # then the page is the waiting room again, saying why, and nothing was booked
    expect(person.page.locator("#ended")).to_contain_text("예매 가능 시간이 끝났습니다")
    expect(person.page.get_by_role("button", name="대기열 들어가기")).to_be_visible()
    person.snap("1-ended")
    assert not Reservation.objects.using("concerts").filter(seat=seat_of(performance, "S-03")).exists()


def queue_admitted(performance_id: int, person: Any) -> bool:
    return bool(person.page.evaluate(f"fetch('/api/performances/{performance_id}/queue/').then(r => r.ok)"))


def test_the_waiting_room_says_when_the_queue_is_unavailable_and_retries(
    visitor: Any, performance: Any, make_user: Any
) -> None:
    # given a queued performance whose queue (Redis) does not answer: a closed port
    Performance.objects.using("concerts").filter(pk=performance.id).update(queue=True)
    person = visitor(make_user())
    with override_settings(QUEUE_REDIS_URL="redis://127.0.0.1:1/0"):
        waiting_room._client.cache_clear()
        waiting_room._script.cache_clear()
        try:
            # when the person opens the waiting room
            person.go(f"/performances/{performance.id}/")

            # then it says the queue is unavailable and when it tries again
            expect(person.page.locator("#queue-message")).to_contain_text("5초 후에 다시 시도합니다")
            person.snap("1-unavailable")
        finally:
            waiting_room._client.cache_clear()
            waiting_room._script.cache_clear()

    # and once the queue answers again, the page offers to join by itself
    expect(person.page.get_by_role("button", name="대기열 들어가기")).to_be_visible()
    expect(person.page.locator("#queue-message")).to_be_hidden()


@override_settings(QUEUE_ACTIVE_USERS=1)
def test_the_waiting_page_asks_again_when_the_server_says(visitor: Any, performance: Any, make_user: Any) -> None:
    # given a queued performance of one place with three people ahead (the third in line waits 3.6 to
    # 4.4 s between polls: later than the page's fallback of 3 s)
    Performance.objects.using("concerts").filter(pk=performance.id).update(queue=True)
    for ahead in (make_user(), make_user(), make_user()):
        waiting_room.queue_join(performance_id=performance.id, user_id=ahead.id, opens_at=None)
    person = visitor(make_user())
    queue = f"/api/performances/{performance.id}/queue/"
    answers: list[tuple[float, str, Any]] = []
    person.page.on(
        "response", lambda r: answers.append((time.monotonic(), r.request.method, r)) if queue in r.url else None
    )
    person.go(f"/performances/{performance.id}/")

    # when the person joins and waits for three polls
    person.page.get_by_role("button", name="대기열 들어가기").click()
    expect(person.page.locator("#queue-place")).to_have_text("내 대기 순서: 3")
    deadline = time.monotonic() + 30
    while sum(1 for _, method, _ in answers if method == "GET") < 4 and time.monotonic() < deadline:
        person.page.wait_for_timeout(100)  # (Playwright delivers the page's events while it is called)

    # then each poll came when the answer before it said, never sooner
    calls = [(at, method, response.json()) for at, method, response in answers]
    after_join = calls[next(i for i, (_, method, _) in enumerate(calls) if method == "POST") :]
    for (at, _, body), (next_at, _, _) in itertools.pairwise(after_join[:4]):
        told = body["poll_after_seconds"]
        assert 3.2 <= told <= 4.5
        assert told - 0.2 <= next_at - at <= told + 2.5, (told, next_at - at)
