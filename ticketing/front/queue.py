"""The waiting room's fast path: join and poll answered on the event loop, at almost no cost.

Who asks: the signed queue ticket (``X-Queue-Ticket`` header, or the ``queue_ticket`` cookie the join
set), else a JWT (verified by its signature). Neither is a database query. A shop page's first call,
with only its session, goes to Django (``PerformanceQueueView``), which answers with a ticket.

A poll with a ticket holding a turn is answered from the turn and the performance's ``serving``,
read from Redis at most once a second per process and shared by every poll of that second: no Redis
round trip. Only a user at or past the head of the line (admitted, or whose admission ended), a
pre-queue user after the opening, or a ticket of an older room, costs one round trip, whose answer
carries a fresh ticket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from ticketing.api import address_of
from ticketing.concerts import selectors, waiting_room
from ticketing.concerts.waiting_room import QueueStatus, QueueTicket, RoomState
from ticketing.observability import metrics

STATE_SECONDS = 1.0  # the shared "now serving": at most this old
PERFORMANCE_SECONDS = 1.0  # a performance's waiting room and opening, for joins: at most this old
QUEUED_LIST_SECONDS = 1.0  # the timer's list of queued performances (and their openings): at most this old
logger = logging.getLogger(__name__)

T = TypeVar("T")
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class Shared(Generic[T]):
    """Per process: one fetch per key and period, whose answer every caller of that period shares."""

    def __init__(self, seconds: float, fetch: Callable[[int], Awaitable[T]]) -> None:
        self.seconds, self.fetch = seconds, fetch
        self.entries: dict[int, tuple[float, asyncio.Future[T]]] = {}

    async def get(self, key: int) -> T:
        now = time.monotonic()
        entry = self.entries.get(key)
        if entry is None or now >= entry[0]:
            if len(self.entries) > 10_000:  # ids nobody queues for: never let them pile up
                self.entries.clear()
            entry = (now + self.seconds, asyncio.ensure_future(self.fetch(key)))
            self.entries[key] = entry
        try:
            return await asyncio.shield(entry[1])
        except Exception:
            if self.entries.get(key) is entry:
                del self.entries[key]  # the next caller tries again
            raise


@dataclass(frozen=True)
class PerformanceInfo:
    exists: bool
    queue: bool
    opens_at: datetime | None


# The fast path's few database reads and the timer run on one thread of their own, which keeps its
# connections as a request would (CONN_MAX_AGE, checked before use) instead of connecting every second.
db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="front-db")


async def in_db_thread(work: Callable[[], T]) -> T:
    def run() -> T:
        close_old_connections()
        try:
            return work()
        finally:
            close_old_connections()

    return await asyncio.get_running_loop().run_in_executor(db_thread, run)


def performance_info(performance_id: int) -> PerformanceInfo:
    performance = selectors.performance_get(performance_id=performance_id)
    if performance is None:
        return PerformanceInfo(False, False, None)
    return PerformanceInfo(True, performance.queue, performance.sales_open_at)


async def _room_state(performance_id: int) -> RoomState:
    return await waiting_room.aqueue_state(performance_id=performance_id)


async def _performance(performance_id: int) -> PerformanceInfo:
    return await in_db_thread(partial(performance_info, performance_id))


states: Shared[RoomState] = Shared(STATE_SECONDS, _room_state)
performances: Shared[PerformanceInfo] = Shared(PERFORMANCE_SECONDS, _performance)


# --- Answers ----------------------------------------------------------------------------------------


async def respond(send: Send, status: int, body: dict[str, Any], headers: Headers | None = None) -> bool:
    data = json.dumps(body).encode()
    base = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    base.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": data})
    return True


async def respond_later(send: Send, status: int, detail: str, seconds: int) -> bool:
    """429 or 503, with Retry-After: when to ask again."""
    return await respond(send, status, {"detail": detail}, [(b"retry-after", str(seconds).encode())])


async def respond_place(send: Send, performance_id: int, status: QueueStatus, user_id: int, session: str) -> bool:
    """A place with a fresh ticket, in the body and as the endpoint's cookie."""
    ticket = waiting_room.queue_ticket_issue(
        performance_id=performance_id, user_id=user_id, status=status, session=session
    )
    cookie = f"{waiting_room.TICKET_COOKIE}={ticket}; Path={waiting_room.ticket_cookie_path(performance_id)}"
    cookie += "; HttpOnly; SameSite=Lax" + ("; Secure" if settings.SESSION_COOKIE_SECURE else "")
    return await respond(send, 200, waiting_room.queue_answer(status, ticket), [(b"set-cookie", cookie.encode())])


# --- Who asks ---------------------------------------------------------------------------------------


def headers_of(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def bearer_user(headers: dict[str, str]) -> int | None:
    """The user id of a valid access token; None without one (or with a bad one: Django says why)."""
    kind, _, raw = headers.get("authorization", "").partition(" ")
    if kind not in jwt_settings.AUTH_HEADER_TYPES or not raw:
        return None
    try:
        return int(AccessToken(raw.strip())[jwt_settings.USER_ID_CLAIM])  # type: ignore[arg-type]
    except (TokenError, KeyError, TypeError, ValueError):
        return None


def ticket_of(headers: dict[str, str], performance_id: int) -> QueueTicket | None:
    raw = headers.get(waiting_room.TICKET_HEADER.lower()) or cookie(headers, waiting_room.TICKET_COOKIE)
    ticket = waiting_room.queue_ticket_read(raw, performance_id=performance_id) if raw else None
    # Issued to a shop session: good only with the same session cookie (another login is another user).
    if ticket and ticket.session != waiting_room.session_digest(cookie(headers, settings.SESSION_COOKIE_NAME)):
        return None if ticket.session else ticket
    return ticket


# --- The two endpoints ------------------------------------------------------------------------------


async def answer(performance_id: int, scope: dict[str, Any], send: Send) -> bool:
    """Answer the request; False: Django answers it instead (nothing has been sent)."""
    headers = headers_of(scope)
    try:
        if scope["method"] == "GET":
            return await poll(performance_id, headers, send)
        if scope["method"] == "POST":
            return await join(performance_id, headers, scope, send)
    except waiting_room.WaitingRoomUnavailable:
        wait = waiting_room.WaitingRoomUnavailable.retry_after_seconds
        return await respond_later(send, 503, waiting_room.UNAVAILABLE, wait)
    return False


async def poll(performance_id: int, headers: dict[str, str], send: Send) -> bool:
    # The signed ticket is its holder's credential for their place, so a poll with one does not verify
    # the JWT too (the JWT's check cost more than the rest of the poll, measured in a rush). A ticket
    # tells only its own holder's place; a booking still needs the holder's JWT or session.
    ticket = ticket_of(headers, performance_id)
    user_id = ticket.user_id if ticket else bearer_user(headers)
    if ticket:
        state = await states.get(performance_id)
        if (quick := from_ticket(ticket, state)) is not None:
            metrics.waiting_room_fast_answer(redis_call=False)
            return await respond(send, 200, waiting_room.queue_answer(quick, headers_ticket(headers)))
    if user_id is None:
        return False
    status = await waiting_room.aqueue_status(performance_id=performance_id, user_id=user_id)
    metrics.waiting_room_fast_answer(redis_call=True)
    if status is None:
        return await respond(send, 404, {"detail": waiting_room.NOT_IN_ROOM})
    return await respond_place(send, performance_id, status, user_id, ticket.session if ticket else "")


def headers_ticket(headers: dict[str, str]) -> str:
    return headers.get(waiting_room.TICKET_HEADER.lower()) or cookie(headers, waiting_room.TICKET_COOKIE) or ""


def from_ticket(ticket: QueueTicket, state: RoomState) -> QueueStatus | None:
    """The place from the ticket and the shared state alone, when they suffice."""
    if ticket.epoch != state.epoch:
        return None  # the room was emptied since: ask Redis
    if ticket.turn is not None and ticket.turn > state.serving:
        return waiting_room.waiting(turn=ticket.turn, serving=state.serving, epoch=state.epoch, opens_at=state.opens_at)
    if ticket.turn is None and not state.opened:
        pace = waiting_room.poll_after(opens_at=state.opens_at)
        return QueueStatus(None, False, None, state.opens_at, pace, epoch=state.epoch)
    return None  # admitted (or no longer), or the pre-queue has opened: ask Redis


async def join(performance_id: int, headers: dict[str, str], scope: dict[str, Any], send: Send) -> bool:
    user_id = bearer_user(headers)
    if user_id is None:
        return False  # a session: Django checks it and its CSRF token
    try:
        info = await performances.get(performance_id)
    except DatabaseError:
        return await respond_later(send, 503, "The database is unavailable right now; try again shortly.", 5)
    if not info.exists:
        return await respond(send, 404, {"detail": "Not found."})
    if not info.queue:
        return await respond(send, 409, {"detail": waiting_room.NO_WAITING_ROOM})
    client = scope.get("client") or ("", 0)
    address = address_of(str(client[0]), headers.get("x-forwarded-for", ""))
    try:
        status = await waiting_room.aqueue_join(
            performance_id=performance_id, user_id=user_id, opens_at=info.opens_at, address=address
        )
    except waiting_room.JoinThrottled as exc:
        return await respond_later(send, 429, str(exc), exc.retry_after_seconds)
    finally:
        metrics.waiting_room_fast_answer(redis_call=True)
    return await respond_place(send, performance_id, status, user_id, "")


# --- The timer --------------------------------------------------------------------------------------

_queued: dict[str, Any] = {"until": 0.0, "performances": []}


def advance_all() -> None:
    """One tick: every queued performance opens if due, moves its pre-queue's batches, admits."""
    if time.monotonic() >= _queued["until"]:
        _queued.update(until=time.monotonic() + QUEUED_LIST_SECONDS, performances=selectors.queued_performances())
    for performance_id, opens_at in _queued["performances"]:
        while waiting_room.queue_advance(performance_id=performance_id, opens_at=opens_at):
            pass  # one batch per call, a few ms of Redis each: others' calls run in between


async def advance_forever() -> None:
    interval = settings.QUEUE_ADVANCE_INTERVAL_MS / 1000
    while True:
        try:
            await in_db_thread(advance_all)
        except (waiting_room.WaitingRoomUnavailable, DatabaseError) as exc:
            logger.warning("waiting room timer: %s (next tick in %s s)", exc, interval)
        await asyncio.sleep(interval)
