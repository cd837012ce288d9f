"""``GET /metrics`` (Prometheus text), ``GET /healthz`` (alive), ``GET /readyz`` (databases and broker answer)."""

from __future__ import annotations

import hmac
import logging

from celery import current_app
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from .gauges import GAUGES

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2.0


def metrics_open() -> bool:
    """Only development (TICKETING_DEV=1: `make run` and the tests) serves /metrics without a token."""
    return settings.DEVELOPMENT


def authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return metrics_open()
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN and not metrics_open():
        detail = "/metrics is closed outside development until METRICS_TOKEN is set (then send it as a Bearer token)."
        return JsonResponse({"detail": detail}, status=403)
    if not authorized(request):
        response = JsonResponse({"detail": "/metrics wants Authorization: Bearer <METRICS_TOKEN>."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(GAUGES)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "alive"})


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Ready, or 503 naming what is down. Anyone may ask: the error text (hosts, users, driver
    messages) goes to the log, not into the answer."""
    errors = {f"database {alias}": database_error(alias) for alias in settings.DATABASES}
    errors["broker"] = broker_error()
    down = [name for name, error in errors.items() if error]
    for name in down:
        logger.warning("not ready: %s is down: %s", name, errors[name])
    if down:
        return JsonResponse({"status": "unavailable", "down": down}, status=503)
    return JsonResponse({"status": "ready"})


def database_error(alias: str) -> str:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # whatever the driver raises, the answer is "down, because ..."
        connections[alias].close()
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ""


def broker_error() -> str:
    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu's errors differ per transport
        return str(exc) or type(exc).__name__
    return ""
