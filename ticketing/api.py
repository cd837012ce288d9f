"""API plumbing shared by every service: error format, strict fields, id path converter, client address,
throttles, the schema."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from ticketing.cache_policy import fail_open

MAX_DB_ID = 2**63 - 1


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON number: no strings, booleans or fractions."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string that must arrive as a JSON string: a number is not silently turned into one.

    ``schema_min_length`` and ``schema_pattern`` tell the schema about what a rule deeper down
    enforces (the password validators, say), so that the schema states what the API accepts.
    """

    def __init__(
        self, *, schema_min_length: int | None = None, schema_pattern: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.schema_min_length = schema_min_length
        self.schema_pattern = schema_pattern

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


# --- The schema --------------------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    # 1 to 255 characters once the server strips the spaces around a header value.
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"},
    OpenApiParameter.HEADER,
    description="A retry with the same key gets the first answer.",
)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")


DETAIL = ErrorSerializer
FIELD_ERRORS = {
    "type": "object",
    "description": "Each field with its problems (or ``detail`` for a body that is not JSON).",
    "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "object"}]
    },
}
ERRORS = {
    400: OpenApiResponse(FIELD_ERRORS, "Invalid input: the body names each field's problem."),
    401: OpenApiResponse(DETAIL, "No valid credentials (a missing, invalid or expired token)."),
    403: OpenApiResponse(DETAIL, "Not allowed now (say, a queued performance without an admission)."),
    404: OpenApiResponse(DETAIL, "No such resource (or not yours)."),
    409: OpenApiResponse(DETAIL, "Not possible in the resource's current state; the detail says why."),
    410: OpenApiResponse(DETAIL, "Gone for good (a ticket of a cancelled booking is void)."),
    422: OpenApiResponse(DETAIL, "This Idempotency-Key was already used with a different request."),
    429: OpenApiResponse(DETAIL, "Too many requests; retry after the Retry-After header's seconds."),
    503: OpenApiResponse(DETAIL, "The waiting room is unavailable; retry after the Retry-After header's seconds."),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error answers an operation documents besides those AutoSchema finds itself (409, say)."""
    return {code: ERRORS[code] for code in codes}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the error answers each operation can give, found from the view:
    400 for a body or an Idempotency-Key, 401 behind authentication, 404 with a path id, 422 with an
    Idempotency-Key, 429 with a throttle. Others (409) an operation lists with ``errors()``."""

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        for code in self.error_codes():
            responses.setdefault(str(code), self._get_response_for_code(ERRORS[code], str(code), direction=direction))
        return dict(sorted(responses.items()))

    def _insert_field_validators(self, field: Any, schema: dict[str, Any]) -> None:
        super()._insert_field_validators(field, schema)
        if isinstance(field, StrictCharField) and schema.get("type") == "string":
            describe_strict_string(field, schema)

    def error_codes(self) -> list[int]:
        idempotent = any(
            isinstance(p, OpenApiParameter) and p.name == IDEMPOTENCY_HEADER for p in self.get_override_parameters()
        )
        has_body = self.method in {"POST", "PUT", "PATCH"} and self.get_request_serializer() is not None
        authenticated = any(not isinstance(p, permissions.AllowAny) for p in self.view.get_permissions())
        codes = {
            400: has_body or idempotent,
            401: authenticated,
            404: "{" in self.path,
            422: idempotent,
            429: bool(self.view.get_throttles()),
        }
        return [code for code, applies in codes.items() if applies]


NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"


def describe_strict_string(field: StrictCharField, schema: dict[str, Any]) -> None:
    """Say what a StrictCharField accepts: no NUL character (DRF refuses them) and, when trimmed,
    something besides spaces; with the minimum length a deeper rule enforces."""
    if field.schema_min_length:
        schema["minLength"] = max(schema.get("minLength", 0), field.schema_min_length)
    if field.schema_pattern:
        schema["pattern"] = field.schema_pattern
    if "pattern" in schema:  # the field's own pattern (a username's) already excludes NUL
        return
    if field.trim_whitespace and not field.allow_blank:
        schema["pattern"] = NOT_BLANK
    else:  # the lengths in the pattern too, so that a generator needs no filter to meet them
        schema["pattern"] = f"^[^\\x00]{{{schema.get('minLength', 0)},{schema.get('maxLength', '')}}}$"


@csrf_exempt  # it changes nothing, and a POST to a wrong path should learn that, not about CSRF
def not_found(request: HttpRequest) -> HttpResponse:
    """Any other path under /api/: a JSON 404 like the API's own, not Django's HTML page (and the
    redirect to the path with its slash that Django would give, where that path exists)."""
    with_slash = request.path + "/"
    if not request.path.endswith("/") and resolves_to_a_view(with_slash):
        if request.method in {"GET", "HEAD"}:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
        return JsonResponse({"detail": f"Not found. Did you mean {with_slash}?"}, status=404)
    return JsonResponse({"detail": "Not found."}, status=404)


def resolves_to_a_view(path: str) -> bool:
    try:
        return resolve(path).func is not not_found
    except Resolver404:
        return False


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


def client_address(request: HttpRequest | Request) -> str:
    """The client's address: the connection's, unless ``TRUSTED_PROXY_COUNT`` proxies stand in front.

    Behind N trusted proxies it is the N-th ``X-Forwarded-For`` entry from the right (the one the
    outermost trusted proxy appended); whatever a client wrote there itself is never believed. A
    request with fewer entries than N skipped a proxy, so its entries may all be the client's own:
    then the connection's address counts.
    """
    return address_of(str(request.META.get("REMOTE_ADDR", "")), str(request.META.get("HTTP_X_FORWARDED_FOR", "")))


def address_of(remote: str, forwarded_for: str) -> str:
    """client_address's rule from the connection's address and the X-Forwarded-For header."""
    proxies = settings.TRUSTED_PROXY_COUNT
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if proxies <= 0 or len(hops) < proxies:
        return remote
    return hops[-proxies]


class SettingRateThrottle(SimpleRateThrottle):
    """A throttle on the default cache (Redis when REDIS_URL is set) whose rate, ``N/period``, is a setting.

    Past it the answer is 429 with ``Retry-After``. Reads and other safe methods are never counted.
    While the cache's Redis is down it lets every request through (``cache_policy``).
    """

    rate_setting: str

    def get_rate(self) -> str:
        return str(getattr(settings, self.rate_setting))

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        allow = super().allow_request
        return fail_open("throttle", True, lambda: allow(request, view))

    def ident_of(self, request: Request) -> str:
        raise NotImplementedError

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident_of(request)}


class AddressRateThrottle(SettingRateThrottle):
    """Counts per client address."""

    def ident_of(self, request: Request) -> str:
        return client_address(request)


class SignupThrottle(AddressRateThrottle):
    """Sign-ups per client address: the API's and the shop's sign-up forms count on this one counter."""

    scope = "signup"
    rate_setting = "SIGNUP_RATE_PER_ADDRESS"


def throttle_wait(throttle: SettingRateThrottle, request: HttpRequest | Request) -> float | None:
    """Apply a throttle outside DRF (a page's form): None when allowed, else the seconds to wait."""
    if throttle.allow_request(request, None):  # type: ignore[arg-type]
        return None
    return throttle.wait() or 1.0


class UserRateThrottle(SettingRateThrottle):
    """Counts per authenticated user (the token's user id)."""

    def ident_of(self, request: Request) -> str:
        return str(user_id_of(request))
