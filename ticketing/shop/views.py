"""The shop's pages: thin views over the same selectors and services the JSON API uses.

Bookings, cancellations and top-ups are sent by the pages' scripts to the JSON API itself (with the
session, a CSRF token and an Idempotency-Key), so every rule, limit and throttle of the API holds here too.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ticketing.accounts import services as accounts
from ticketing.api import SignupThrottle, client_address, throttle_wait
from ticketing.concerts import selectors as concerts
from ticketing.concerts.ticket_codes import ticket_code
from ticketing.payments import selectors as payments

from .forms import LoginForm, SignupForm
from .pages import shop_page
from .progress import booking_progress
from .qr import qr_svg
from .templatetags.shop import status_label, won

SEATS_PER_ROW = 12


def user_id_of(request: HttpRequest) -> int:
    return int(request.user.pk)  # type: ignore[arg-type]


# --- Concerts and seat maps ------------------------------------------------------------------------------


@require_GET
@shop_page
def concert_list(request: HttpRequest) -> HttpResponse:
    catalogue = list(concerts.concert_list())
    ids = [p.id for concert in catalogue for p in concert.performances.all()]
    return render(
        request,
        "shop/concerts.html",
        {"concerts": catalogue, "seats_left": concerts.seats_left_by_grade(performance_ids=ids)},
    )


@dataclass(frozen=True)
class SeatRow:
    grade: str
    number: int
    price: int
    seats: list[Any]
    buttons: SafeString


def seat_rows(seats: Iterable[Any]) -> list[SeatRow]:
    """Seats in rows: grade by grade (in the order of their first seat), then by seat id."""
    rows: list[SeatRow] = []
    by_grade: dict[str, list[Any]] = {}
    for seat in seats:
        by_grade.setdefault(seat.grade, []).append(seat)
    words = SeatWords()
    for grade, grade_seats in by_grade.items():
        for number, start in enumerate(range(0, len(grade_seats), SEATS_PER_ROW), start=1):
            row = grade_seats[start : start + SEATS_PER_ROW]
            rows.append(SeatRow(grade, number, row[0].price, row, seat_buttons(row, words)))
    return rows


class SeatWords:
    """The words of a seat button, each worked out once per page (a big hall has thousands of seats)."""

    def __init__(self) -> None:
        self.prices: dict[int, str] = {}
        self.statuses: dict[str, str] = {}

    def price(self, amount: int) -> str:
        if amount not in self.prices:
            self.prices[amount] = escape(won(amount))
        return self.prices[amount]

    def status(self, status: str) -> str:
        if status not in self.statuses:
            self.statuses[status] = escape(status_label(status))
        return self.statuses[status]


SEAT_MARKS = {"HELD": "…", "SOLD": "✕"}


def seat_buttons(seats: list[Any], words: SeatWords) -> SafeString:
    """A row's seat buttons, built in Python: the template language took seconds for 5,000 seats.

    Every value from the data is escaped; the markup is what shop.js and the tests read.
    """
    buttons = []
    for seat in seats:
        label, grade, price = escape(seat.label), escape(seat.grade), words.price(seat.price)
        status = str(seat.public_status)  # an OFFERED seat is HELD to everyone else
        mark = SEAT_MARKS.get(status) or escape(seat.label[-2:])
        disabled = "" if status == "AVAILABLE" else " disabled"
        buttons.append(
            f'<button type="button" class="seat {escape(status.lower())}" data-seat-id="{int(seat.id)}" '
            f'data-label="{label}" data-grade="{grade}" data-price="{int(seat.price)}" data-price-text="{price}" '
            f'data-status="{escape(status)}" aria-pressed="false"{disabled} '
            f'aria-label="{label}, {grade}, {price}, {words.status(status)}">'
            f'<span class="mark" aria-hidden="true">{mark}</span></button>'
        )
    return mark_safe("\n".join(buttons))  # noqa: S308  (built from escaped values above)


@require_GET
@shop_page
def performance_detail(request: HttpRequest, performance_id: int) -> HttpResponse:
    performance = concerts.performance_get(performance_id=performance_id)
    seats = concerts.performance_seats(performance_id=performance_id)
    if performance is None or seats is None:
        raise Http404
    rows = seat_rows(seats)
    grades = [(grade, next(iter(rs)).price) for grade, rs in groupby(rows, key=lambda r: r.grade)]
    left = concerts.seats_left_by_grade(performance_ids=[performance.id])[performance.id]
    context = {
        "performance": performance,
        "concert": performance.concert,
        "rows": rows,
        "grades": grades,
        "seats_left": left,
        "idempotency_key": uuid.uuid4().hex,
        "max_seats": settings.MAX_SEATS_PER_USER,
        "sales_not_open": not performance.queue and sales_not_open(performance),
        # Grades with no seat left: their waiting lists (queued performances have their waiting room instead).
        "sold_out_grades": [] if performance.queue else sold_out(grades, left),
        "seat_counts": range(1, settings.MAX_SEATS_PER_USER + 1),
        "admission_ended": "ended" in request.GET,
        # For the waiting room's estimate: at most this many are admitted at once, each for this long.
        "queue_active_users": settings.QUEUE_ACTIVE_USERS,
        "queue_admission_seconds": settings.QUEUE_ADMISSION_SECONDS,
    }
    return render(request, "shop/performance.html", context)


def sold_out(grades: list[tuple[str, int]], left: dict[str, int]) -> list[str]:
    return [grade for grade, _ in grades if not left.get(grade)]


def sales_not_open(performance: Any) -> bool:
    """Before the opening the page shows the time and a countdown; the booking itself checks the same."""
    return bool(performance.sales_open_at and timezone.now() < performance.sales_open_at)


SEAT_STATUS_CACHE_SECONDS = 1.0
# Per process: performance id -> (computed at, ETag, body). A few performances are on sale at a time.
_seat_statuses: dict[int, tuple[float, str, bytes]] = {}


@require_GET
def performance_seat_statuses(request: HttpRequest, performance_id: int) -> HttpResponse:
    """What changes on a seat map: the held and sold seat ids, with an ETag (304 when unchanged).

    Every open seat map polls this. Each web process computes the answer at most once a second per
    performance and keeps it in its memory, so thousands of open pages cost a query a second per
    process, no cache round trip, and an unchanged map costs a 304 with no body.
    """
    etag, body = seat_statuses_cached(performance_id)
    # Weak or strong: GZipMiddleware turns the ETag of a compressed answer into W/"...".
    if request.headers.get("If-None-Match", "").removeprefix("W/") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-cache"
    return response


def seat_statuses_cached(performance_id: int) -> tuple[str, bytes]:
    now = time.monotonic()
    cached = _seat_statuses.get(performance_id)
    if cached is not None and now - cached[0] < SEAT_STATUS_CACHE_SECONDS:
        return cached[1], cached[2]
    if concerts.performance_get(performance_id=performance_id) is None:
        raise Http404
    taken = concerts.seat_statuses(performance_id=performance_id)
    body = json.dumps({"held": taken["HELD"], "sold": taken["SOLD"]}, separators=(",", ":")).encode()
    etag = f'"{hashlib.blake2b(body, digest_size=8).hexdigest()}"'
    if len(_seat_statuses) > 1000:
        _seat_statuses.clear()
    _seat_statuses[performance_id] = (now, etag, body)
    return etag, body


# --- Bookings --------------------------------------------------------------------------------------------


def progress_of(request: HttpRequest, reservation_id: int) -> tuple[Any, Any]:
    reservation = concerts.reservation_get(user_id=user_id_of(request), reservation_id=reservation_id)
    if reservation is None:
        raise Http404
    return reservation, booking_progress(reservation, concerts.reservation_saga_steps(reservation_id=reservation.id))


@require_GET
@login_required
@shop_page
def booking_detail(request: HttpRequest, reservation_id: int) -> HttpResponse:
    reservation, progress = progress_of(request, reservation_id)
    seat = reservation.seat
    context = {
        "reservation": reservation,
        "progress": progress,
        "seats": [line.seat for line in reservation.lines.all()] or [seat],
        "performance": seat.performance,
        "concert": seat.performance.concert,
        "idempotency_key": uuid.uuid4().hex,
        "admin_url": reverse("admin:concerts_reservation_change", args=[reservation.id])
        if request.user.is_staff
        else "",
    }
    return render(request, "shop/booking.html", context)


@require_GET
@login_required
@shop_page
def booking_status(request: HttpRequest, reservation_id: int) -> HttpResponse:
    """The booking page polls this until the saga ends: the progress, rendered in the visitor's language."""
    reservation, progress = progress_of(request, reservation_id)
    html = render_to_string("shop/_progress.html", {"progress": progress, "reservation": reservation}, request)
    return JsonResponse({"status": progress.status, "terminal": progress.terminal, "html": html})


@require_GET
@login_required
@shop_page
def booking_list(request: HttpRequest) -> HttpResponse:
    user_id = user_id_of(request)
    reservations = concerts.reservation_list(user_id=user_id).select_related("seat__performance__concert")
    context = {
        "reservations": reservations[:100],
        "offers": concerts.waitlist_offers(user_id=user_id, open_only=True),
        "waiting": concerts.waitlist_entries(user_id=user_id),
        "idempotency_key": uuid.uuid4().hex,
    }
    return render(request, "shop/bookings.html", context)


@require_GET
@login_required
@shop_page
def booking_tickets(request: HttpRequest, reservation_id: int) -> HttpResponse:
    """The tickets of a confirmed booking, each with its QR code: Korean first, then English; one printed page."""
    reservation = concerts.reservation_get(user_id=user_id_of(request), reservation_id=reservation_id)
    tickets = concerts.reservation_tickets(user_id=user_id_of(request), reservation_id=reservation_id)
    if reservation is None or tickets is None:
        raise Http404
    shown = []
    for ticket in tickets:
        code = ticket_code(ticket_id=ticket.id, performance_id=ticket.performance_id, label=ticket.seat.label)
        shown.append({"ticket": ticket, "code": code, "qr": qr_svg(code)})
    context = {"reservation": reservation, "tickets": shown, "holder": request.user.get_username()}
    return render(request, "shop/tickets.html", context)


# --- Wallet ----------------------------------------------------------------------------------------------


@require_GET
@login_required
@shop_page
def wallet(request: HttpRequest) -> HttpResponse:
    user_id = user_id_of(request)
    context = {
        "balance": payments.wallet_balance(user_id=user_id),
        "entries": payments.wallet_entries(user_id=user_id),
        "idempotency_key": uuid.uuid4().hex,
    }
    return render(request, "shop/wallet.html", context)


# --- Accounts --------------------------------------------------------------------------------------------


def next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse(settings.LOGIN_REDIRECT_URL)


@require_http_methods(["GET", "POST"])
@shop_page
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and (wait := throttle_wait(SignupThrottle(), request)) is not None:
        # The API's sign-up throttle, on the same counter: the pages are no way around it.
        form.add_error(None, _("Too many sign-ups from your network. Please try again later."))
        response = render(request, "shop/signup.html", {"form": form, "next": next_url(request)}, status=429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.user_register(**form.cleaned_data)
        except ValidationError as exc:
            form.add_error("password", exc)
        except accounts.UsernameTaken:
            form.add_error("username", _("This username is taken. Please choose another."))
        else:
            auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(next_url(request))
    return render(request, "shop/signup.html", {"form": form, "next": next_url(request)})


@require_http_methods(["GET", "POST"])
@shop_page
def login(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.user_login(**form.cleaned_data, ip=client_address(request))
        except accounts.LoginThrottled:
            form.add_error(None, _("Too many failed attempts. Please wait a few minutes and try again."))
            status = 429
        except accounts.InvalidCredentials:
            form.add_error(None, _("The username or password is wrong."))
        else:
            auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(next_url(request))
    return render(request, "shop/login.html", {"form": form, "next": next_url(request)}, status=status)


@shop_page
def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Every 404 outside the API's own JSON answers: a page in the visitor's language with a way back."""
    return render(request, "shop/not_found.html", status=404)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth.logout(request)
    return redirect("shop:concerts")
