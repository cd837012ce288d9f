"""The shop's pages and small JSON endpoints, through Django's test client (no browser, no workers)."""

from __future__ import annotations

import gzip
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import PASSWORD, all_databases, new_client, unique
from tests.saga.conftest import wait_for
from ticketing.accounts.models import User
from ticketing.concerts.models import Concert, Performance, Reservation, Seat

from .conftest import seat_of

pytestmark = [all_databases]


@pytest.fixture
def browser_client() -> Client:
    """A browser of its own address, so that the per-address sign-up rate never leaks between tests."""
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=new_client().defaults["REMOTE_ADDR"])


def logged_in(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_of(client: Client, path: str = "/") -> str:
    client.get(path)
    return client.cookies["csrftoken"].value


def test_the_seat_statuses_name_the_taken_seats_and_an_unchanged_map_costs_a_304(
    browser_client: Client, performance: Any
) -> None:
    # given a performance with one seat sold
    Seat.objects.using("concerts").filter(pk=seat_of(performance, "R-01").pk).update(status="SOLD")
    url = f"/performances/{performance.id}/seats.json"

    # when a seat map polls, and then polls again with the ETag it got
    first = browser_client.get(url)
    again = browser_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    # then the first answer lists the sold seat, and the second is a 304 without a body
    assert first.status_code == 200
    assert json.loads(first.content) == {"held": [], "sold": [seat_of(performance, "R-01").id]}
    assert (again.status_code, again.content) == (304, b"")
    assert again["ETag"] == first["ETag"]


def test_the_seat_statuses_change_their_etag_when_a_seat_changes(browser_client: Client, performance: Any) -> None:
    # given a seat map that polled once
    url = f"/performances/{performance.id}/seats.json"
    etag = browser_client.get(url)["ETag"]

    # when a seat becomes held
    held = seat_of(performance, "VIP-01")
    Seat.objects.using("concerts").filter(pk=held.pk).update(status="HELD")

    # then within the cache's second the poll gets a new answer naming it
    answer = wait_for(
        lambda: (r := browser_client.get(url, HTTP_IF_NONE_MATCH=etag)).status_code == 200 and r,
        timeout=3,
        what="a new seat-status answer",
    )
    assert json.loads(answer.content)["held"] == [held.id]
    assert answer["ETag"] != etag


@pytest.mark.parametrize("path", ["/performances/999999/", "/performances/999999/seats.json", "/no-such-page/"])
def test_an_unknown_page_is_a_404_with_a_way_back(browser_client: Client, path: str) -> None:
    response = browser_client.get(path)
    assert response.status_code == 404
    assert "페이지를 찾을 수 없습니다" in response.content.decode()
    assert 'href="/"' in response.content.decode()


def test_an_unknown_api_path_under_a_drf_view_stays_json(client_for: Any, make_user: Any) -> None:
    response = client_for(make_user()).get("/api/reservations/999999/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", ["/wallet/", "/bookings/", "/bookings/1/", "/bookings/1/status.json"])
def test_personal_pages_ask_for_a_login(browser_client: Client, path: str) -> None:
    response = browser_client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_someone_elses_booking_is_a_404(make_user: Any, performance: Any) -> None:
    # given a booking of another user
    owner = make_user()
    seat = seat_of(performance, "R-02")
    reservation = Reservation.objects.using("concerts").create(user_id=owner.id, seat=seat, amount=seat.price)

    # when a third person opens it, then it does not exist for them
    client = logged_in(make_user())
    assert client.get(f"/bookings/{reservation.id}/").status_code == 404
    assert client.get(f"/bookings/{reservation.id}/status.json").status_code == 404


def test_staff_see_open_in_admin_on_a_booking_and_others_do_not(make_user: Any, performance: Any) -> None:
    # given a staff member's booking and a customer's booking
    staff = make_user()
    staff.is_staff = True
    staff.save(using="default")
    customer = make_user()
    bookings = {
        user.id: Reservation.objects.using("concerts").create(
            user_id=user.id, seat=seat_of(performance, label), amount=40_000
        )
        for user, label in ((staff, "R-03"), (customer, "R-04"))
    }

    # when each opens their own booking page
    staff_page = logged_in(staff).get(f"/bookings/{bookings[staff.id].id}/").content.decode()
    customer_page = logged_in(customer).get(f"/bookings/{bookings[customer.id].id}/").content.decode()

    # then only the staff member has the admin link
    assert f'href="/admin/concerts/reservation/{bookings[staff.id].id}/change/"' in staff_page
    assert "/admin/" not in customer_page


def test_pages_are_korean_by_default_and_english_after_the_switch(browser_client: Client, performance: Any) -> None:
    # given a first visit: Korean, with the concert's Korean title
    page = browser_client.get("/")
    assert page["Content-Language"] == "ko"
    assert performance.concert.title in page.content.decode()
    assert "공연" in page.content.decode()

    # when the visitor switches to English
    token = browser_client.cookies["csrftoken"].value
    switched = browser_client.post("/i18n/setlang/", {"language": "en", "next": "/"}, HTTP_X_CSRFTOKEN=token)

    # then the pages are English, with the concert's English title
    assert switched.status_code == 302
    page = browser_client.get("/")
    assert page["Content-Language"] == "en"
    assert performance.concert.title_en in page.content.decode()
    assert "Concerts" in page.content.decode()


def test_pages_send_the_security_headers(browser_client: Client) -> None:
    response = browser_client.get("/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_api_takes_the_session_only_with_the_csrf_token(make_user: Any, performance: Any) -> None:
    # given a person logged in to the shop
    client = logged_in(make_user())
    seat = seat_of(performance, "VIP-02")
    body = json.dumps({"seat_id": seat.id})

    # when a page posts to the API without the CSRF token, it is refused and nothing is booked
    refused = client.post("/api/reservations/", body, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not Reservation.objects.using("concerts").filter(seat=seat).exists()

    # and with the token, it books
    accepted = client.post(
        "/api/reservations/", body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf_of(client)
    )
    assert accepted.status_code == 202, accepted.content


def test_signing_up_logs_the_person_in(browser_client: Client) -> None:
    username = unique("lee")
    token = csrf_of(browser_client, "/signup/")
    response = browser_client.post(
        "/signup/", {"username": username, "password": PASSWORD, "next": "/wallet/"}, HTTP_X_CSRFTOKEN=token
    )
    assert (response.status_code, response["Location"]) == (302, "/wallet/")
    assert browser_client.get("/wallet/").status_code == 200


@pytest.mark.parametrize(
    ("password", "words"), [("83920174", "전부 숫자로"), ("short", "너무 짧습니다")], ids=["digits only", "too short"]
)
def test_a_weak_password_is_refused_with_the_reason(browser_client: Client, password: str, words: str) -> None:
    token = csrf_of(browser_client, "/signup/")
    response = browser_client.post(
        "/signup/", {"username": unique("park"), "password": password}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200
    assert words in response.content.decode()


def test_a_taken_username_is_refused_with_a_clear_message(browser_client: Client, make_user: Any) -> None:
    taken = make_user().username
    token = csrf_of(browser_client, "/signup/")
    response = browser_client.post("/signup/", {"username": taken, "password": PASSWORD}, HTTP_X_CSRFTOKEN=token)
    assert "이미 사용 중인 아이디입니다" in response.content.decode()


def test_a_wrong_password_is_refused_and_logs_no_one_in(browser_client: Client, make_user: Any) -> None:
    user = make_user()
    token = csrf_of(browser_client, "/login/")
    response = browser_client.post(
        "/login/", {"username": user.username, "password": "wrong-password-1"}, HTTP_X_CSRFTOKEN=token
    )
    assert "아이디 또는 비밀번호가 올바르지 않습니다" in response.content.decode()
    assert browser_client.get("/wallet/").status_code == 302


def test_a_login_never_redirects_to_another_site(browser_client: Client, make_user: Any) -> None:
    user = make_user()
    token = csrf_of(browser_client, "/login/")
    response = browser_client.post(
        "/login/",
        {"username": user.username, "password": PASSWORD, "next": "https://evil.example/"},
        HTTP_X_CSRFTOKEN=token,
    )
    assert (response.status_code, response["Location"]) == (302, "/")


def test_with_redis_down_the_pages_still_sign_up_and_log_in(browser_client: Client, cache_redis_down: None) -> None:
    # given Redis stopped (the cache's sign-up throttle and login delay cannot be read)
    username = unique("outage")

    # when a person signs up, logs out and logs in again through the pages
    signup = shop_signup(browser_client, username)
    browser_client.logout()
    token = csrf_of(browser_client, "/login/")
    login = browser_client.post("/login/", {"username": username, "password": PASSWORD}, HTTP_X_CSRFTOKEN=token)

    # then both go through (redirects), and the wallet page is theirs
    assert (signup.status_code, login.status_code) == (302, 302), login.content
    assert browser_client.get("/wallet/").status_code == 200


def test_behind_a_trusted_proxy_the_shop_login_delay_counts_per_person(make_user: Any, settings: Any) -> None:
    # given one trusted proxy, and a person behind it who failed their address's limit on the login page
    settings.TRUSTED_PROXY_COUNT, settings.LOGIN_FAILURES_PER_IP = 1, 3
    settings.LOGIN_DELAY_BASE_SECONDS = 30
    proxy_address = new_client().defaults["REMOTE_ADDR"]
    guesser = Client(enforce_csrf_checks=True, REMOTE_ADDR=proxy_address, HTTP_X_FORWARDED_FOR="10.7.0.1")
    for _ in range(3):
        token = csrf_of(guesser, "/login/")
        guesser.post("/login/", {"username": unique("guess"), "password": "x-x-x-x-1"}, HTTP_X_CSRFTOKEN=token)

    # when another person logs in through the same proxy
    other = Client(enforce_csrf_checks=True, REMOTE_ADDR=proxy_address, HTTP_X_FORWARDED_FOR="10.7.0.2")
    token = csrf_of(other, "/login/")
    response = other.post("/login/", {"username": make_user().username, "password": PASSWORD}, HTTP_X_CSRFTOKEN=token)

    # then they get in, while the guesser's address still waits
    assert response.status_code == 302, response.content
    token = csrf_of(guesser, "/login/")
    again = guesser.post("/login/", {"username": unique("guess"), "password": "x-x-x-x-1"}, HTTP_X_CSRFTOKEN=token)
    assert again.status_code == 429


def test_a_form_without_the_csrf_token_is_refused(browser_client: Client) -> None:
    response = browser_client.post("/signup/", {"username": unique("choi"), "password": PASSWORD})
    assert response.status_code == 403
    assert not User.objects.filter(username__startswith="choi").exists()


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("hold expired", "결제 확인 시간이 지나 좌석 선점이 해제되었습니다"),
        ("payment error: gateway timeout", "오류로 결제를 처리하지 못했습니다"),
        ("insufficient balance", "지갑 잔액이 부족합니다"),
    ],
)
def test_a_system_cancellation_says_why_in_plain_words(
    make_user: Any, performance: Any, reason: str, words: str
) -> None:
    # given a booking the system cancelled for this reason
    user = make_user()
    seat = seat_of(performance, "S-02")
    reservation = Reservation.objects.using("concerts").create(
        user_id=user.id, seat=seat, amount=seat.price, status="SYSTEM_CANCELED", reason=reason
    )

    # when its owner opens it, then the page names the outcome and the reason, and the saga is over
    status = logged_in(user).get(f"/bookings/{reservation.id}/status.json").json()
    assert status["terminal"] is True
    assert "시스템에 의해 예매가 취소되었습니다" in status["html"]
    assert words in status["html"]


def test_a_booking_of_several_seats_shows_every_seat_on_its_page_and_in_my_bookings(
    make_user: Any, performance: Any
) -> None:
    # given a person's booking of two seats, through the API as the seat map sends it
    client = logged_in(make_user())
    seats = [seat_of(performance, "S-05"), seat_of(performance, "S-06")]
    booked = client.post(
        "/api/reservations/",
        json.dumps({"seat_ids": [s.id for s in seats]}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf_of(client),
        HTTP_IDEMPOTENCY_KEY=unique("two-seats"),
    )
    assert booked.status_code == 202, booked.content

    # when they open the booking and their bookings, then both seats are named on each
    page = client.get(f"/bookings/{booked.json()['id']}/").content.decode()
    bookings = client.get("/bookings/").content.decode()
    assert "S-05 (S)" in page and "S-06 (S)" in page
    assert "S-05, S-06" in bookings


def test_the_seat_map_lets_a_person_choose_up_to_the_seat_limit(
    browser_client: Client, performance: Any, settings: Any
) -> None:
    # given a seat limit of 3
    settings.MAX_SEATS_PER_USER = 3

    # when the seat map is shown, then it allows that many seats
    page = browser_client.get(f"/performances/{performance.id}/").content.decode()
    assert 'data-max-seats="3"' in page


def test_a_taken_seat_is_named_in_the_409_by_id(make_user: Any, performance: Any) -> None:
    # given a seat another person holds
    taken, free = seat_of(performance, "S-07"), seat_of(performance, "S-08")
    Seat.objects.using("concerts").filter(pk=taken.id).update(status="HELD")
    client = logged_in(make_user())

    # when a booking of it and a free seat is refused (and sent again with the same key)
    key, token = unique("taken"), csrf_of(client)

    def book() -> Any:
        body = json.dumps({"seat_ids": [free.id, taken.id]})
        return client.post(
            "/api/reservations/",
            body,
            content_type="application/json",
            HTTP_X_CSRFTOKEN=token,
            HTTP_IDEMPOTENCY_KEY=key,
        )

    refused, again = book(), book()

    # then the answer names the taken seat by id, so the seat map can drop it from the choice
    assert refused.status_code == 409
    assert [int(i) for i in refused.json()["seat_ids"]] == [taken.id]
    assert "nothing was held" in refused.json()["detail"]
    assert (again.status_code, again.json()) == (409, refused.json())


def test_the_seat_limit_409_says_the_limit(make_user: Any, performance: Any, settings: Any) -> None:
    # given a limit of two seats per person, one of which the person holds already
    settings.MAX_SEATS_PER_USER = 2
    client = logged_in(make_user())
    token = csrf_of(client)

    def book(*labels: str) -> Any:
        body = json.dumps({"seat_ids": [seat_of(performance, label).id for label in labels]})
        return client.post(
            "/api/reservations/",
            body,
            content_type="application/json",
            HTTP_X_CSRFTOKEN=token,
            HTTP_IDEMPOTENCY_KEY=unique("limit"),
        )

    assert book("S-09").status_code == 202

    # when they book two more, then the 409 carries the limit
    refused = book("S-10", "S-11")
    assert refused.status_code == 409
    assert int(refused.json()["limit"]) == 2
    assert "MAX_SEATS_PER_USER" in refused.json()["detail"]


def test_before_the_opening_the_page_shows_the_opening_time_instead_of_a_seat_map(
    browser_client: Client, performance: Any
) -> None:
    # given a performance whose sales open in an hour
    performance.sales_open_at = timezone.now() + timedelta(hours=1)
    performance.save(using="concerts")

    # when its page is shown, then it counts down to the opening and has no seat map
    page = browser_client.get(f"/performances/{performance.id}/").content.decode()
    assert 'id="sales-opening"' in page
    assert "아직 예매가 열리지 않았습니다" in page
    assert 'id="seatmap"' not in page


def test_a_queued_performance_shows_the_waiting_room_and_keeps_the_seat_map_for_the_admitted(
    make_user: Any, performance: Any
) -> None:
    # given a performance with a waiting room
    performance.queue = True
    performance.save(using="concerts")

    # when a person opens its page
    page = logged_in(make_user()).get(f"/performances/{performance.id}/").content.decode()

    # then the waiting room is shown, and the seat map is hidden until an admission
    assert 'id="waiting-room"' in page
    assert f'data-queue-url="/api/performances/{performance.id}/queue/"' in page
    assert 'id="seatmap" class="seatmap" aria-labelledby="seatmap-title" hidden data-queued="true"' in page


def test_an_ended_admission_is_said_on_the_waiting_room(make_user: Any, performance: Any) -> None:
    # given a queued performance
    performance.queue = True
    performance.save(using="concerts")

    # when the seat map sends a person back after a 403, then the room says their time ended
    page = logged_in(make_user()).get(f"/performances/{performance.id}/?ended=1").content.decode()
    assert "예매 가능 시간이 끝났습니다" in page


def shop_signup(client: Client, username: str) -> Any:
    return client.post(
        "/signup/", {"username": username, "password": PASSWORD}, HTTP_X_CSRFTOKEN=csrf_of(client, "/signup/")
    )


def test_shop_signups_past_the_rate_of_an_address_are_a_429_with_retry_after(
    browser_client: Client, settings: Any
) -> None:
    # given an address that signed up on the shop as often as its rate allows
    settings.SIGNUP_RATE_PER_ADDRESS = "2/min"
    for _ in range(2):
        assert shop_signup(browser_client, unique("kim")).status_code == 302

    # when it signs up once more
    username = unique("kim")
    response = shop_signup(browser_client, username)

    # then the page says to wait, with Retry-After, and no account was made
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "가입 요청이 너무 많습니다" in response.content.decode()
    assert not User.objects.using("default").filter(username=username).exists()


def test_the_shop_and_the_api_count_sign_ups_on_one_counter(browser_client: Client, settings: Any) -> None:
    # given an address that used its sign-up rate through the API
    settings.SIGNUP_RATE_PER_ADDRESS = "1/min"
    api = new_client()
    api.defaults["REMOTE_ADDR"] = browser_client.defaults["REMOTE_ADDR"]
    assert (
        api.post("/api/auth/signup/", {"username": unique("kim"), "password": PASSWORD}, format="json").status_code
        == 201
    )

    # when the same address signs up on the shop, then it is refused
    assert shop_signup(browser_client, unique("kim")).status_code == 429


@all_databases
def test_the_seat_map_of_a_5000_seat_hall_is_under_300_kb_on_the_wire(browser_client: Client) -> None:
    # given a hall of 5,000 seats, some sold
    concert = Concert.objects.using("concerts").create(title=unique("big hall"))
    hall = Performance.objects.using("concerts").create(
        concert=concert, starts_at=timezone.now() + timedelta(days=30), venue="Big Hall"
    )
    Seat.objects.using("concerts").bulk_create(
        Seat(performance=hall, label=f"{g}-{n:04d}", grade=g, price=p, status="SOLD" if n % 7 == 0 else "AVAILABLE")
        for g, p, count in (("VIP", 150_000, 500), ("R", 110_000, 1500), ("S", 80_000, 3000))
        for n in range(1, count + 1)
    )

    # when a browser (which accepts gzip) opens its page
    response = browser_client.get(f"/performances/{hall.id}/", HTTP_ACCEPT_ENCODING="gzip, deflate, br")

    # then every seat is on it, and it travels compressed in under 300 KB
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert len(response.content) < 300_000, len(response.content)
    assert gzip.decompress(response.content).count(b'class="seat ') == 5000


@all_databases
def test_an_unchanged_seat_map_is_a_304_also_when_it_travels_gzipped(browser_client: Client) -> None:
    # given the seat statuses of a hall with 300 seats sold, fetched compressed (the ETag made weak)
    concert = Concert.objects.using("concerts").create(title=unique("hall"))
    hall = Performance.objects.using("concerts").create(
        concert=concert, starts_at=timezone.now() + timedelta(days=30), venue="Hall"
    )
    Seat.objects.using("concerts").bulk_create(
        Seat(performance=hall, label=f"S-{n:03d}", grade="S", price=1, status="SOLD") for n in range(300)
    )
    url = f"/performances/{hall.id}/seats.json"
    first = browser_client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert first.headers["Content-Encoding"] == "gzip" and first.headers["ETag"].startswith("W/")
    # when asked again with that ETag, then nothing changed: 304
    again = browser_client.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=first.headers["ETag"])
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("path", "box", "retry_is_safe"),
    [("/wallet/", "message", True), ("/bookings/", "message", False)],
)
def test_a_message_box_names_what_a_request_can_meet_and_whether_pressing_again_is_safe(
    make_user: Any, path: str, box: str, retry_is_safe: bool
) -> None:
    # when a person opens a page with a form
    page = logged_in(make_user()).get(path).content.decode()

    # then its message box carries the four messages, and a payment's page says a retry charges once
    (tag,) = re.findall(rf'<div id="{box}"[^>]*>', page)
    for name in ("login", "throttled", "network", "server"):
        assert f'data-{name}="' in tag
    assert ("중복 결제되지 않습니다" in tag) == retry_is_safe
