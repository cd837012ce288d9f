"""The waiting room of a queued performance, kept in Redis: who waits, in which order, who is admitted.

Every operation is one Lua script, so that Redis runs it atomically: the opening (the pre-queue moved,
in its shuffled order, to the head of the line, once), joining, expiring admissions and handing freed
places on happen in one step, and no number of concurrent requests can admit more than
``QUEUE_ACTIVE_USERS`` users at once. A poll is one round trip and no database query.

Keys of one performance (all in one hash slot, under the cache's key prefix):
- ``pre``: sorted set of users who joined before the sales opened, each under a random score (their
  order at the opening, a shuffle nobody can game),
- ``line``: sorted set of waiting users, scored by their turn (``seq`` hands out turns),
- ``admitted``: sorted set of admitted users, scored by the end of their admission (ms),
- ``until``: hash of each admitted user's full admission end, restored when a cancelled booking is
  retried within the grace,
- ``meta``: hash with ``opens_at`` (ms; 0: open now).

Redis down: every function raises ``WaitingRoomUnavailable``; bookings of queued performances are then
refused (fail closed). Positions survive a Redis restart only with persistence on (AOF; see README).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from django.conf import settings

from ticketing.observability import metrics

# One script for every operation. ARGV: user, cap, admission ms, random draw, action, argument.
# It answers the caller's status and how many users it admitted (whoever called, for the metrics).
# A join also records the performance's opening time, cap and admission length, so that every process
# (web workers, the concerts consumer) applies the same ones.
_SCRIPT = """
local pre, line, admitted, full_until, seq, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local member, action = ARGV[1], ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if action == 'join' then redis.call('HSET', meta, 'opens_at', ARGV[6], 'cap', ARGV[2], 'ttl', ARGV[3]) end
local cap = tonumber(redis.call('HGET', meta, 'cap') or ARGV[2])
local ttl = tonumber(redis.call('HGET', meta, 'ttl') or ARGV[3])
local opens_at = tonumber(redis.call('HGET', meta, 'opens_at') or '0')
local granted = 0

local function open_and_admit()
  if now < opens_at then return end
  if redis.call('EXISTS', pre) == 1 then
    -- The opening: the pre-queue, in the random order of its scores, takes the first turns, once;
    -- later joiners queue behind it in arrival order.
    for _, m in ipairs(redis.call('ZRANGE', pre, 0, -1)) do redis.call('ZADD', line, redis.call('INCR', seq), m) end
    redis.call('DEL', pre)
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', admitted, '-inf', now)) do
    redis.call('ZREM', admitted, m)
    redis.call('HDEL', full_until, m)
  end
  local free = cap - redis.call('ZCARD', admitted)
  if free > 0 then
    local next = redis.call('ZPOPMIN', line, free)
    for i = 1, #next, 2 do
      redis.call('ZADD', admitted, now + ttl, next[i])
      redis.call('HSET', full_until, next[i], now + ttl)
    end
    granted = granted + #next / 2
  end
end

local function status()
  local ends = redis.call('ZSCORE', admitted, member)
  if ends then return {0, 1, tonumber(ends)} end
  local rank = redis.call('ZRANK', line, member)
  if rank then return {rank + 1, 0, 0} end
  if redis.call('ZSCORE', pre, member) then return {-1, 0, opens_at} end
  return {-2, 0, 0}
end

open_and_admit()
if action == 'join' then
  if status()[1] == -2 then
    if now >= opens_at then
      redis.call('ZADD', line, redis.call('INCR', seq), member)
    else
      -- A random score, drawn once per user and never shown: the pre-queue's order is a shuffle that
      -- joining early (or with many clients) cannot improve.
      redis.call('ZADD', pre, ARGV[4], member)
    end
  end
elseif redis.call('ZSCORE', admitted, member) then
  if action == 'end' then
    redis.call('ZREM', admitted, member)
    redis.call('HDEL', full_until, member)
  elseif action == 'grace' then
    redis.call('ZADD', admitted, 'XX', 'LT', now + tonumber(ARGV[6]), member)
  elseif action == 'resume' then
    local full = redis.call('HGET', full_until, member)
    if full then redis.call('ZADD', admitted, 'XX', full, member) end
  end
end
open_and_admit()
local answer = status()
answer[4] = granted
return answer
"""

PRE_QUEUE, NOT_JOINED = -1, -2
logger = logging.getLogger(__name__)


class WaitingRoomUnavailable(Exception):
    """Redis did not answer: the waiting room fails closed."""

    retry_after_seconds = 5


@dataclass(frozen=True)
class QueueStatus:
    """``position`` counts from 1 among those waiting; 0 when admitted; None in the pre-queue."""

    position: int | None
    admitted: bool
    admitted_until: datetime | None
    opens_at: datetime | None = None


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.QUEUE_REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@cache
def _script() -> Any:
    return _client().register_script(_SCRIPT)


def _keys(performance_id: int) -> list[str]:
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "ticketing"
    tag = f"{prefix}:queue:{{{performance_id}}}"
    return [f"{tag}:{name}" for name in ("pre", "line", "admitted", "until", "seq", "meta")]


def _run(performance_id: int, user_id: int, action: str, argument: int = 0) -> list[int]:
    draw = secrets.randbits(52)  # exact as a Lua number
    args = [user_id, settings.QUEUE_ACTIVE_USERS, settings.QUEUE_ADMISSION_SECONDS * 1000, draw]
    try:
        *status, granted = (int(v) for v in _script()(keys=_keys(performance_id), args=[*args, action, argument]))
    except redis.RedisError as exc:
        logger.error("waiting room of performance %s: %s", performance_id, exc)
        raise WaitingRoomUnavailable(str(exc)) from exc
    if granted:
        metrics.waiting_room_admitted(performance_id=performance_id, count=granted)
    return status


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _status(raw: list[int]) -> QueueStatus | None:
    position, admitted, when = raw
    if position == NOT_JOINED:
        return None
    if position == PRE_QUEUE:
        return QueueStatus(position=None, admitted=False, admitted_until=None, opens_at=_moment(when))
    return QueueStatus(position=position, admitted=bool(admitted), admitted_until=_moment(when) if admitted else None)


def queue_join(*, performance_id: int, user_id: int, opens_at: datetime | None) -> QueueStatus:
    """Join (or, if already in, keep one's place): before ``opens_at`` into the pre-queue."""
    opens_ms = int(opens_at.timestamp() * 1000) if opens_at else 0
    status = _status(_run(performance_id, user_id, "join", opens_ms))
    assert status is not None  # the script has just put the user in
    return status


def queue_status(*, performance_id: int, user_id: int) -> QueueStatus | None:
    """The user's place now (None: not in the waiting room, or the admission ended)."""
    return _status(_run(performance_id, user_id, "status"))


def queue_admitted(*, performance_id: int, user_id: int) -> bool:
    status = queue_status(performance_id=performance_id, user_id=user_id)
    return status is not None and status.admitted


def queue_saga_finished(*, performance_id: int, user_id: int, confirmed: bool) -> None:
    """A booking ended: confirmed, the place goes to the next in line now; cancelled, after the grace."""
    action = "end" if confirmed else "grace"
    _run(performance_id, user_id, action, settings.QUEUE_RETRY_GRACE_SECONDS * 1000)


def queue_booking_started(*, performance_id: int, user_id: int) -> None:
    """A new booking within the grace after a cancelled one: the admission gets its full time back."""
    _run(performance_id, user_id, "resume")


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
        _client().delete(*_keys(performance_id))
    except redis.RedisError as exc:
        raise WaitingRoomUnavailable(str(exc)) from exc
