"""The waiting room of a queued performance, kept in Redis: who waits, in which turn, who is admitted.

Every write is one Lua script, so that Redis runs it atomically; no number of concurrent requests can
admit more than ``QUEUE_ACTIVE_USERS`` users at once. Each waiting user holds a *turn*, a number that
never changes, and the room admits in turn order; ``serving`` is the highest turn admitted so far. A
user's place is therefore ``turn - serving``: the fast path (``ticketing.front``) answers a poll from
the turn in the user's signed queue ticket and ``serving`` read once a second per process, with no
Redis round trip and no database query.

A poll only reads. Admissions advance when a place frees (a booking's end, an admission that lapses)
and on the timer of ``queue_advance`` (the web front's loop), never because someone polled.

Keys of one performance (all in one hash slot, under the cache's key prefix):
- ``pre``: sorted set of users who joined before the sales opened, each under a random score (their
  order at the opening, a shuffle nobody can game),
- ``line``: sorted set of waiting users, scored by their turn,
- ``admitted``: sorted set of admitted users, scored by the end of their admission (ms),
- ``until``: hash of each admitted user's full admission end (ms), granted on activity,
- ``meta``: hash: ``seq`` (last turn handed out), ``serving``, ``epoch`` (changes when the room is
  emptied, so old tickets fail), ``opens_at`` (ms, from the database), and at the opening ``base``
  (the turn before the pre-queue's first) and ``moved`` (pre-queue users moved into the line so far),
- ``rate:u:<user>``, ``rate:a:<address>``: the join throttle's counters.

The opening time always comes from the database (each join and each timer tick pass it): losing
Redis keys can never open a sale early. At the opening the pre-queue's turns are reserved at once
(``base`` + 1 ...) and its users move into the line ``QUEUE_OPENING_BATCH`` at a time, so that a pre-queue
of 100,000 never blocks Redis for more than a few milliseconds, and a later joiner's turn is always
behind all of them.

Redis down: every function raises ``WaitingRoomUnavailable``; bookings of queued performances are then
refused (fail closed). Places survive a Redis restart only with persistence on (AOF; docs/OPERATIONS.md).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
import redis.asyncio as aredis
from django.conf import settings
from django.core import signing

from ticketing.observability import metrics

# One script for every write and for the one-user read. KEYS: pre, line, admitted, until, meta, the
# user's and the address's throttle counters. ARGV: action, user, opens_at (ms; -1 unknown: never
# opens), cap, first window ms, full admission ms, opening batch, random draw, epoch, action argument,
# join limit per user, per address, throttle window ms.
# Answer: kind, turn or admission end, serving, epoch, granted (admitted by this call), more (opening
# batches left), the opening time recorded by the last join or tick (ms).
_SCRIPT = """
local pre, line, admitted, full_until, meta, rate_user, rate_addr = unpack(KEYS)
local action, member = ARGV[1], ARGV[2]
local opens_at = tonumber(ARGV[3])
local cap, first_ms, full_ms, batch = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local granted, more = 0, 0

local function num(field) return tonumber(redis.call('HGET', meta, field) or '0') end

local function open_if_due()
  if opens_at < 0 or now < opens_at or redis.call('HGET', meta, 'base') then return end
  -- The opening: the pre-queue's turns are reserved at once, in the order of its random scores;
  -- whoever joins from now on gets a turn behind all of them.
  local n = redis.call('ZCARD', pre)
  redis.call('HSET', meta, 'base', num('seq'), 'moved', 0)
  redis.call('HINCRBY', meta, 'seq', n)
end

local function move_batch()
  if not redis.call('HGET', meta, 'base') then return end
  local base, moved = num('base'), num('moved')
  local next = redis.call('ZPOPMIN', pre, batch)
  for i = 1, #next, 2 do redis.call('ZADD', line, base + moved + (i + 1) / 2, next[i]) end
  redis.call('HINCRBY', meta, 'moved', #next / 2)
  if redis.call('EXISTS', pre) == 1 then more = 1 end
end

local function admit()
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', admitted, '-inf', now)) do
    redis.call('ZREM', admitted, m)
    redis.call('HDEL', full_until, m)
  end
  local free = cap - redis.call('ZCARD', admitted)
  if free <= 0 then return end
  -- While the pre-queue is still being moved, only turns already in the line up to its last moved
  -- one may go: a later joiner never passes a pre-queue user who is still on the way.
  local upto = '+inf'
  if redis.call('EXISTS', pre) == 1 and redis.call('HGET', meta, 'base') then upto = num('base') + num('moved') end
  local next = redis.call('ZRANGEBYSCORE', line, '-inf', upto, 'WITHSCORES', 'LIMIT', 0, free)
  local serving = num('serving')
  for i = 1, #next, 2 do
    redis.call('ZREM', line, next[i])
    redis.call('ZADD', admitted, now + first_ms, next[i])
    redis.call('HSET', full_until, next[i], now + full_ms)
    serving = math.max(serving, tonumber(next[i + 1]))
  end
  redis.call('HSET', meta, 'serving', serving)
  granted = granted + #next / 2
end

local function status()
  local ends = redis.call('ZSCORE', admitted, member)
  if ends and tonumber(ends) > now then return {1, tonumber(ends)} end
  local turn = redis.call('ZSCORE', line, member)
  if turn then return {2, tonumber(turn)} end
  if redis.call('ZSCORE', pre, member) then
    if redis.call('HGET', meta, 'base') then
      return {2, num('base') + num('moved') + redis.call('ZRANK', pre, member) + 1}
    end
    return {3, 0}
  end
  return {0, 0}
end

local function throttled(key, limit)
  if tonumber(limit) <= 0 then return nil end  -- no limit (an address unknown: a call from inside)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[13]) end
  if n > tonumber(limit) then return redis.call('PTTL', key) end
  return nil
end

local answer
if action == 'join' then
  local wait = throttled(rate_user, ARGV[11]) or throttled(rate_addr, ARGV[12])
  if wait then return {4, wait, 0, '', 0, 0, 0} end
  redis.call('HSETNX', meta, 'epoch', ARGV[9])
  redis.call('HSET', meta, 'opens_at', opens_at)
  open_if_due()
  local kind = status()[1]
  if kind == 0 then
    if redis.call('HGET', meta, 'base') then
      redis.call('ZADD', line, redis.call('HINCRBY', meta, 'seq', 1), member)
    else
      -- A random score, drawn once per user and never shown: the pre-queue's order is a shuffle that
      -- joining early (or with many clients) cannot improve.
      redis.call('ZADD', pre, ARGV[8], member)
    end
  elseif kind == 1 then
    -- Back on the page while admitted: the user is there, the admission gets its full time.
    redis.call('ZADD', admitted, 'XX', 'GT', redis.call('HGET', full_until, member), member)
  end
  admit()
elseif action == 'advance' then
  if redis.call('HEXISTS', meta, 'epoch') == 0 then return {0, 0, 0, '', 0, 0, 0} end
  redis.call('HSET', meta, 'opens_at', opens_at)
  open_if_due()
  move_batch()
  admit()
elseif action == 'touch' then
  local full = redis.call('HGET', full_until, member)
  if full and status()[1] == 1 then redis.call('ZADD', admitted, 'XX', 'GT', full, member) end
elseif action == 'end' then
  redis.call('ZREM', admitted, member)
  redis.call('HDEL', full_until, member)
  admit()
elseif action == 'grace' then
  if status()[1] == 1 then redis.call('ZADD', admitted, 'XX', 'LT', now + tonumber(ARGV[10]), member) end
end
answer = status()
return {answer[1], answer[2], num('serving'), redis.call('HGET', meta, 'epoch') or '', granted, more, num('opens_at')}
"""

_jitter = secrets.SystemRandom()  # spreads polls in time (ruff: no pseudo-random anywhere)
NOT_JOINED, ADMITTED, WAITING, PRE_QUEUE, THROTTLED = 0, 1, 2, 3, 4
JOIN_WINDOW_MS = 60_000
# The answers both the fast path and the API view give, word for word.
NO_WAITING_ROOM = "This performance has no waiting room: book its seats directly."
NOT_IN_ROOM = "You are not in this performance's waiting room (or your admission ended)."
UNAVAILABLE = "The waiting room is unavailable right now; try again shortly."
TICKET_COOKIE, TICKET_HEADER = "queue_ticket", "X-Queue-Ticket"
logger = logging.getLogger(__name__)


class WaitingRoomUnavailable(Exception):
    """Redis did not answer: the waiting room fails closed."""

    retry_after_seconds = 5


class JoinThrottled(Exception):
    """Too many joins by this user or from this address; ``retry_after_seconds`` says when to retry."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"Too many attempts to join; retry in {retry_after_seconds} s.")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class QueueStatus:
    """``position`` counts from 1 among those waiting; 0 when admitted; None in the pre-queue.

    ``turn`` and ``epoch`` go into the user's queue ticket; ``poll_after_seconds`` is when to ask again.
    """

    position: int | None
    admitted: bool
    admitted_until: datetime | None
    opens_at: datetime | None = None
    poll_after_seconds: float = 1.0
    turn: int | None = None
    epoch: str = ""


@dataclass(frozen=True)
class RoomState:
    """What every poll of one performance shares, read at most once a second per process."""

    serving: int
    epoch: str
    opens_at: datetime | None
    opened: bool


# --- Keys, arguments and answers (shared by the blocking and the asyncio clients) --------------------


def _keys(performance_id: int, user_id: int = 0, address: str = "") -> list[str]:
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "ticketing"
    tag = f"{prefix}:queue:{{{performance_id}}}"
    names = ("pre", "line", "admitted", "until", "meta", f"rate:u:{user_id}", f"rate:a:{address}")
    return [f"{tag}:{name}" for name in names]


def _ms(moment: datetime | None) -> int:
    return int(moment.timestamp() * 1000) if moment else 0


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _args(action: str, user_id: int, opens_ms: int = -1, argument: int = 0, address: str = "") -> list[Any]:
    return [
        action,
        user_id,
        opens_ms,
        settings.QUEUE_ACTIVE_USERS,
        min(settings.QUEUE_FIRST_WINDOW_SECONDS, settings.QUEUE_ADMISSION_SECONDS) * 1000,
        settings.QUEUE_ADMISSION_SECONDS * 1000,
        settings.QUEUE_OPENING_BATCH,
        secrets.randbits(52),  # exact as a Lua number
        secrets.token_hex(4),
        argument,
        settings.QUEUE_JOIN_RATE_PER_USER,
        settings.QUEUE_JOIN_RATE_PER_ADDRESS if address else 0,
        JOIN_WINDOW_MS,
    ]


def _decode(performance_id: int, raw: list[Any]) -> tuple[QueueStatus | None, int]:
    """The script's answer as the user's status (None: not in the room) and whether batches are left."""
    kind, value, serving, granted, more, opens_ms = (int(raw[i]) for i in (0, 1, 2, 4, 5, 6))
    opens_at = _moment(opens_ms) if opens_ms > 0 else None
    epoch = raw[3].decode() if isinstance(raw[3], bytes) else str(raw[3])
    if granted:
        metrics.waiting_room_admitted(performance_id=performance_id, count=granted)
    if kind == THROTTLED:
        raise JoinThrottled(max(1, -(-value // 1000)))
    if kind == NOT_JOINED:
        return None, more
    if kind == ADMITTED:
        until = _moment(value)
        return QueueStatus(0, True, until, opens_at, poll_after(admitted=True), epoch=epoch), more
    if kind == PRE_QUEUE:
        return QueueStatus(None, False, None, opens_at, poll_after(opens_at=opens_at), epoch=epoch), more
    return waiting(turn=value, serving=serving, epoch=epoch, opens_at=opens_at), more


def waiting(*, turn: int, serving: int, epoch: str, opens_at: datetime | None) -> QueueStatus:
    position = max(1, turn - serving)
    return QueueStatus(position, False, None, opens_at, poll_after(position=position), turn=turn, epoch=epoch)


def poll_after(*, admitted: bool = False, position: int | None = None, opens_at: datetime | None = None) -> float:
    """When to ask again: soon near the head of the line, up to QUEUE_POLL_MAX_SECONDS further back.

    About ``QUEUE_ACTIVE_USERS`` places move per admission round, so a place ``n`` rounds back asks
    about every ``2 n`` seconds; with 10,000 waiting that is a few hundred polls a second in all. A
    jitter of 10 % keeps clients from polling in step. Nobody loses a place by asking later.
    """
    ceiling = float(settings.QUEUE_POLL_MAX_SECONDS)
    if admitted:
        return ceiling
    if position is None:  # the pre-queue: wake up just after the opening, spread over a few seconds
        to_open = (opens_at.timestamp() - time.time()) if opens_at else 0.0
        if to_open > ceiling:
            return round(ceiling * _jitter.uniform(0.9, 1.0), 1)
        return round(max(0.0, to_open) + _jitter.uniform(0.5, settings.QUEUE_OPENING_SPREAD_SECONDS), 1)
    rounds = -(-position // max(1, settings.QUEUE_ACTIVE_USERS))
    return round(min(ceiling, max(1.0, 2.0 * (rounds - 1))) * _jitter.uniform(0.9, 1.1), 1)


# --- Queue tickets: the fast path's proof of who polls, and of their turn ----------------------------


@dataclass(frozen=True)
class QueueTicket:
    performance_id: int
    user_id: int
    turn: int | None
    epoch: str
    session: str  # a digest of the session cookie it was issued to ("" for a JWT's holder)


def _signer() -> signing.Signer:
    return signing.Signer(salt="ticketing.queue-ticket")


def session_digest(session_cookie: str | None) -> str:
    return hashlib.sha256(session_cookie.encode()).hexdigest()[:16] if session_cookie else ""


def queue_ticket_issue(*, performance_id: int, user_id: int, status: QueueStatus, session: str = "") -> str:
    turn = "" if status.turn is None else str(status.turn)
    return _signer().sign(f"{performance_id}.{user_id}.{turn}.{status.epoch}.{session}")


def queue_ticket_read(raw: str, *, performance_id: int) -> QueueTicket | None:
    """The ticket's content if it is ours, untampered and for this performance; None otherwise."""
    try:
        pid, uid, turn, epoch, session = _signer().unsign(raw).split(".")
    except (signing.BadSignature, ValueError):
        return None
    if pid != str(performance_id):
        return None
    return QueueTicket(int(pid), int(uid), int(turn) if turn else None, epoch, session)


def ticket_cookie_path(performance_id: int) -> str:
    """The ticket's cookie goes back to this performance's queue endpoint only."""
    return f"/api/performances/{performance_id}/queue/"


def queue_answer(status: QueueStatus, ticket: str) -> dict[str, Any]:
    """The JSON body of every queue answer (the contract's fields; see QueueStatusSerializer)."""
    return {
        "ticket": ticket,
        "position": status.position,
        "admitted": status.admitted,
        "admitted_until": status.admitted_until.isoformat().replace("+00:00", "Z") if status.admitted_until else None,
        "opens_at": status.opens_at.isoformat().replace("+00:00", "Z") if status.opens_at else None,
        "poll_after_seconds": status.poll_after_seconds,
    }


# --- Blocking client (web workers, consumers, the timer) ---------------------------------------------


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.QUEUE_REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@cache
def _script() -> Any:
    # Loaded up front: a first EVALSHA answered NOSCRIPT makes some servers (fakeredis) drop the
    # connection, and then the client's own retry fails too.
    _client().script_load(_SCRIPT)
    return _client().register_script(_SCRIPT)


def _run(performance_id: int, args: list[Any], user_id: int = 0, address: str = "") -> list[Any]:
    try:
        return list(_script()(keys=_keys(performance_id, user_id, address), args=args))
    except redis.RedisError as exc:
        logger.error("waiting room of performance %s: %s", performance_id, exc)
        raise WaitingRoomUnavailable(str(exc)) from exc


def queue_join(*, performance_id: int, user_id: int, opens_at: datetime | None, address: str = "") -> QueueStatus:
    """Join (or, if already in, keep one's place): before ``opens_at`` into the pre-queue.

    Raises JoinThrottled past QUEUE_JOIN_RATE_PER_USER (or _PER_ADDRESS) joins a minute. Joining again
    while admitted counts as presence: the admission gets its full QUEUE_ADMISSION_SECONDS.
    """
    raw = _run(performance_id, _args("join", user_id, _ms(opens_at), address=address), user_id, address)
    status, _ = _decode(performance_id, raw)
    assert status is not None  # the script has just put the user in
    return status


def queue_status(*, performance_id: int, user_id: int) -> QueueStatus | None:
    """The user's place now (None: not in the waiting room, or the admission ended). Reads only."""
    status, _ = _decode(performance_id, _run(performance_id, _args("status", user_id), user_id))
    return status


def queue_admitted(*, performance_id: int, user_id: int) -> bool:
    status = queue_status(performance_id=performance_id, user_id=user_id)
    return status is not None and status.admitted


def queue_advance(*, performance_id: int, opens_at: datetime | None) -> bool:
    """The timer's step: open if due, move one batch of the pre-queue, end lapsed admissions, admit.

    True while batches of the pre-queue are left to move (call again at once).
    """
    _, more = _decode(performance_id, _run(performance_id, _args("advance", 0, _ms(opens_at))))
    return bool(more)


def queue_saga_finished(*, performance_id: int, user_id: int, confirmed: bool) -> None:
    """A booking ended: confirmed, the place goes to the next in line now; cancelled, after the grace."""
    action = "end" if confirmed else "grace"
    raw = _run(performance_id, _args(action, user_id, argument=settings.QUEUE_RETRY_GRACE_SECONDS * 1000), user_id)
    _decode(performance_id, raw)  # counts whom the freed place admitted


def queue_booking_started(*, performance_id: int, user_id: int) -> None:
    """Activity (a booking, also one within the grace after a cancelled one): the full admission time."""
    _run(performance_id, _args("touch", user_id), user_id)


def queue_lengths(*, performance_ids: list[int]) -> dict[int, int]:
    """Users waiting (in the line or the pre-queue) per performance: two ZCARDs each, one round trip."""
    pipe = _client().pipeline(transaction=False)
    for performance_id in performance_ids:
        pre, line = _keys(performance_id)[:2]
        pipe.zcard(pre)
        pipe.zcard(line)
    try:
        counts = [int(v) for v in pipe.execute()]
    except redis.RedisError as exc:
        raise WaitingRoomUnavailable(str(exc)) from exc
    return {pid: counts[2 * i] + counts[2 * i + 1] for i, pid in enumerate(performance_ids)}


def queue_reset(*, performance_id: int) -> None:
    """Empty the waiting room (the demo's performance opens afresh at each start)."""
    try:
        _client().delete(*_keys(performance_id)[:5])
    except redis.RedisError as exc:
        raise WaitingRoomUnavailable(str(exc)) from exc


# --- asyncio client (the web front's fast path) ------------------------------------------------------


@cache
def _aclient() -> aredis.Redis:
    # One per process (the front runs one event loop per worker process).
    return aredis.Redis.from_url(settings.QUEUE_REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@cache
def _ascript() -> Any:
    return _aclient().register_script(_SCRIPT)


async def _arun(performance_id: int, args: list[Any], user_id: int = 0, address: str = "") -> list[Any]:
    client = _aclient()
    try:
        if not getattr(client, "ticketing_script_loaded", False):  # see _script
            await client.script_load(_SCRIPT)
            client.ticketing_script_loaded = True  # type: ignore[attr-defined]
        return list(await _ascript()(keys=_keys(performance_id, user_id, address), args=args))
    except redis.RedisError as exc:
        logger.error("waiting room of performance %s: %s", performance_id, exc)
        raise WaitingRoomUnavailable(str(exc)) from exc


async def aqueue_join(
    *, performance_id: int, user_id: int, opens_at: datetime | None, address: str = ""
) -> QueueStatus:
    """queue_join for the event loop."""
    raw = await _arun(performance_id, _args("join", user_id, _ms(opens_at), address=address), user_id, address)
    status, _ = _decode(performance_id, raw)
    assert status is not None
    return status


async def aqueue_status(*, performance_id: int, user_id: int) -> QueueStatus | None:
    """queue_status for the event loop."""
    return _decode(performance_id, await _arun(performance_id, _args("status", user_id), user_id))[0]


async def aqueue_state(*, performance_id: int) -> RoomState:
    """The performance's shared state: ``serving``, the room's epoch, its opening. One HMGET."""
    meta = _keys(performance_id)[4]
    try:
        fields = _aclient().hmget(meta, ["serving", "epoch", "opens_at", "base"])
        serving, epoch, opens_ms, base = await fields  # type: ignore[misc]  # redis-py types both clients as one
    except redis.RedisError as exc:
        raise WaitingRoomUnavailable(str(exc)) from exc
    opens_at = _moment(int(opens_ms)) if opens_ms and int(opens_ms) > 0 else None
    return RoomState(int(serving or 0), (epoch or b"").decode(), opens_at, base is not None)
