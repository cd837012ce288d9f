"""Writes of the accounts service."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from ticketing.cache_policy import fail_open
from ticketing.events.catalogue import UserRegistered
from ticketing.outbox.publish import publish
from ticketing.retention import delete_in_batches

from .models import User
from .selectors import DB, login_account_key, login_failure_keys, login_wait_key, login_wait_seconds, user_by_username


class UsernameTaken(Exception):
    pass


class LoginThrottled(Exception):
    def __init__(self, wait: int) -> None:
        super().__init__(f"try again in {wait} s")
        self.wait = wait


class InvalidCredentials(Exception):
    pass


def user_register(*, username: str, password: str) -> User:
    """Create the user and announce ``user-registered`` (payments opens the wallet) in one transaction."""
    user = User(username=username)
    validate_password(password, user)
    user.set_password(password)
    try:
        with transaction.atomic(using=DB):
            if User.objects.using(DB).filter(username__iexact=username).exists():
                raise UsernameTaken(username)
            user.save(using=DB)
            publish(
                UserRegistered(user_id=user.id),
                using=DB,
                aggregate_id=user.id,
                correlation_id=f"user-{user.id}",  # not to be confused with reservation N's saga
            )
    except IntegrityError as exc:  # two signups with the same name raced; the constraint decided
        raise UsernameTaken(username) from exc
    return user


def user_login(*, username: str, password: str, ip: str) -> User:
    """Check the credentials, unless the account or the address must still wait after its failures.

    The wait is short and grows with each failure past the free ones (1 s, 2 s, 4 s, ... up to
    LOGIN_DELAY_CAP_SECONDS, by default), so guessing is slow while nobody can lock an account for good: once the
    wait is over, the right password works.
    """
    if wait := login_wait_seconds(username=username, ip=ip):
        raise LoginThrottled(wait)
    user = user_by_username(username=username)
    if user is None:
        User().set_password(password)  # spend the same time as a real check: no user enumeration
    elif user.is_active and user.check_password(password):
        login_failures_forget(username=username)
        return user
    login_failure_record(username=username, ip=ip)
    raise InvalidCredentials


def login_failure_record(*, username: str, ip: str) -> None:
    fail_open("login-delay", None, lambda: login_failure_delay(username=username, ip=ip))


def login_failure_delay(*, username: str, ip: str) -> None:
    """Count the failure for the account and the address; past the free ones, make both wait."""
    account_key, ip_key = login_failure_keys(username=username, ip=ip)
    for key, free in ((account_key, settings.LOGIN_FAILURES_PER_ACCOUNT), (ip_key, settings.LOGIN_FAILURES_PER_IP)):
        failures = login_failure_count(key)
        if failures >= free:
            growth = 2 ** min(failures - free, 30)
            delay = min(settings.LOGIN_DELAY_BASE_SECONDS * growth, settings.LOGIN_DELAY_CAP_SECONDS)
            cache.set(login_wait_key(key), time.time() + delay, timeout=delay)


def login_failures_forget(*, username: str) -> None:
    """A successful login starts the account afresh (not its address: one account must not clear it)."""
    key = login_account_key(username)
    fail_open("login-delay", None, lambda: cache.delete_many([key, login_wait_key(key)]))


def login_failure_count(key: str) -> int:
    """One more failure under ``key`` within the window; the count so far."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    if cache.add(key, 1, timeout=window):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        return 1


def user_tokens_revoke(*, user_id: int) -> int:
    """Blacklist every refresh token of the user still outstanding: after a password change, every
    device logs in again (access tokens end within ACCESS_TOKEN_LIFETIME; sessions end by themselves,
    since Django checks a session against the password's hash). The number revoked."""
    outstanding = OutstandingToken.objects.using(DB).filter(user_id=user_id, blacklistedtoken__isnull=True)
    revoked = [BlacklistedToken(token=token) for token in outstanding]
    BlacklistedToken.objects.using(DB).bulk_create(revoked, ignore_conflicts=True)
    return len(revoked)


def refresh_tokens_expired_delete(*, batch_size: int | None = None) -> int:
    """Forget refresh tokens past their expiry (with their blacklist rows): they are refused anyway."""
    return delete_in_batches(
        OutstandingToken.objects.using(DB).filter(expires_at__lte=timezone.now()),
        using=DB,
        batch_size=batch_size or settings.RETENTION_BATCH_SIZE,
        max_batches=settings.RETENTION_MAX_BATCHES,
    )
