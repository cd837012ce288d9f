"""API plumbing shared by every service: error format, strict fields, id path converter, client address,
throttles."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

MAX_DB_ID = 2**63 - 1


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON number: no strings, booleans or fractions."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string that must arrive as a JSON string: a number is not silently turned into one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class IdField(StrictIntegerField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_DB_ID, **kwargs)


class IdConverter:
    """Path converter for database ids: digits that fit a bigint, so a huge id is a 404, not a 500."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ObjectDoesNotExist):
        exc = Http404()
    return drf_exception_handler(exc, context)


def user_id_of(request: Request) -> int:
    """The caller's user id, straight from the verified token (no accounts database read)."""
    user_id = getattr(request.user, "pk", None)
    if user_id is None:
        raise exceptions.NotAuthenticated
    return int(user_id)


def client_address(request: Request) -> str:
    """The client's address: the connection's, unless ``TRUSTED_PROXY_COUNT`` proxies stand in front.

    Behind N trusted proxies it is the N-th ``X-Forwarded-For`` entry from the right (the one the
    outermost trusted proxy appended); whatever a client wrote there itself is never believed.
    """
    remote = str(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.TRUSTED_PROXY_COUNT
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    if proxies <= 0 or not hops:
        return remote
    return hops[-min(proxies, len(hops))]


class SettingRateThrottle(SimpleRateThrottle):
    """A throttle on the default cache (Redis when REDIS_URL is set) whose rate, ``N/period``, is a setting.

    Past it the answer is 429 with ``Retry-After``. Reads and other safe methods are never counted.
    """

    rate_setting: str

    def get_rate(self) -> str:
        return str(getattr(settings, self.rate_setting))

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)

    def ident_of(self, request: Request) -> str:
        raise NotImplementedError

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident_of(request)}


class AddressRateThrottle(SettingRateThrottle):
    """Counts per client address."""

    def ident_of(self, request: Request) -> str:
        return client_address(request)


class UserRateThrottle(SettingRateThrottle):
    """Counts per authenticated user (the token's user id)."""

    def ident_of(self, request: Request) -> str:
        return str(user_id_of(request))
