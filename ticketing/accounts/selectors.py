"""Reads of the accounts service."""

from __future__ import annotations

from django.core.cache import cache

from .models import User

DB = "default"


def user_get(*, user_id: int) -> User | None:
    return User.objects.using(DB).filter(pk=user_id).first()


def user_by_username(*, username: str) -> User | None:
    return User.objects.using(DB).filter(username__iexact=username).first()


def login_failure_keys(*, username: str, ip: str) -> tuple[str, str]:
    return f"login-fail:user:{username.lower()}", f"login-fail:ip:{ip}"


def login_is_throttled(*, username: str, ip: str, per_account: int, per_ip: int) -> bool:
    user_key, ip_key = login_failure_keys(username=username, ip=ip)
    counts = cache.get_many([user_key, ip_key])
    return counts.get(user_key, 0) >= per_account or counts.get(ip_key, 0) >= per_ip
