"""What a request does when the cache (Redis at ``REDIS_URL``) does not answer: it goes on without it.

The cache holds only counters that slow abuse down (the throttles, the login delay). Refusing every
sign-up, login and booking while Redis is down would turn a helper's outage into the whole system's,
so each such use fails open: the request is served as if the cache were empty, with a warning in the
log and ``ticketing_cache_fail_open_total{use}`` counted. The waiting room, which decides who may book,
fails closed instead (503 with Retry-After, ``concerts.waiting_room``). docs/RELIABILITY.md lists each use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import redis

from ticketing.observability import metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")


def fail_open(use: str, default: T, call: Callable[[], T]) -> T:
    """``call()``'s answer, or ``default`` when the cache's Redis does not answer."""
    try:
        return call()
    except redis.RedisError as exc:
        logger.warning("cache unavailable, %s fails open: %s", use, exc)
        metrics.cache_fail_open(use=use)
        return default
