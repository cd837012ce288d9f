"""Writes of the accounts service."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.db import IntegrityError, transaction

from ticketing.outbox.publish import publish

from .models import User
from .selectors import DB, login_failure_keys, login_is_throttled, user_by_username


class UsernameTaken(Exception):
    pass


class LoginThrottled(Exception):
    pass


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
                "user-registered",
                {"user_id": user.id},
                using=DB,
                aggregate_id=user.id,
                correlation_id=f"user-{user.id}",  # not to be confused with reservation N's saga
            )
    except IntegrityError as exc:  # two signups with the same name raced; the constraint decided
        raise UsernameTaken(username) from exc
    return user


def user_login(*, username: str, password: str, ip: str) -> User:
    """Check the credentials, refusing early once an account or an IP failed too often."""
    if login_is_throttled(
        username=username,
        ip=ip,
        per_account=settings.LOGIN_FAILURES_PER_ACCOUNT,
        per_ip=settings.LOGIN_FAILURES_PER_IP,
    ):
        raise LoginThrottled
    user = user_by_username(username=username)
    if user is None:
        User().set_password(password)  # spend the same time as a real check: no user enumeration
    elif user.is_active and user.check_password(password):
        return user
    login_failure_record(username=username, ip=ip)
    raise InvalidCredentials


def login_failure_record(*, username: str, ip: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for key in login_failure_keys(username=username, ip=ip):
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=window)


def demo_admin_ensure(*, password: str) -> User:
    with transaction.atomic(using=DB):
        user = User.objects.using(DB).filter(username__iexact="admin").first() or User(username="admin")
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save(using=DB)
    return user
