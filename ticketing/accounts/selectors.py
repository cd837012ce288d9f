"""Reads of the accounts service."""

from __future__ import annotations

import math
import time

from django.core.cache import cache

from ticketing.cache_policy import fail_open

from .models import User

DB = "default"


def user_get(*, user_id: int) -> User | None:
    return User.objects.using(DB).filter(pk=user_id).first()


def user_by_username(*, username: str) -> User | None:
    return User.objects.using(DB).filter(username__iexact=username).first()


def login_account_key(username: str) -> str:
    return f"login-fail:user:{username.lower()}"


def login_failure_keys(*, username: str, ip: str) -> tuple[str, str]:
    return login_account_key(username), f"login-fail:ip:{ip}"


def login_wait_key(failure_key: str) -> str:
    return failure_key.replace("login-fail:", "login-wait:", 1)


def login_wait_seconds(*, username: str, ip: str) -> int:
    """How long this account or this address must still wait after its failures (0: it may try now).

    Without the cache's Redis, 0: logins go on undelayed (each guess still costs an Argon2 hash).
    """
    keys = [login_wait_key(key) for key in login_failure_keys(username=username, ip=ip)]
    waits: dict[str, float] = fail_open("login-delay", {}, lambda: cache.get_many(keys))
    until = max(waits.values(), default=0.0)
    return max(0, math.ceil(until - time.time()))
