"""What the outbox tells observability about each event: one call at each seam of publish, relay, consume."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

from .logging import saga_logging
from .metrics import CONSUMER_DURATION, EVENTS_CONSUMED, EVENTS_DUPLICATE
from .tracing import consuming_span

logger = logging.getLogger("ticketing.events")


@cache
def service_of(alias: str) -> str:
    return {db: service for service, db in settings.SERVICE_DATABASES.items()}.get(alias, alias)


@dataclass
class Consumption:
    duplicate: bool = False


@contextmanager
def consuming(envelope: dict[str, Any], *, using: str) -> Iterator[Consumption]:
    """Around one event's consumption: its span, its saga ids on every log line, its metrics."""
    service, event = service_of(using), str(envelope.get("event"))
    consumption = Consumption()
    started = time.perf_counter()
    ids = {"correlation_id": str(envelope.get("correlation_id")), "event_id": str(envelope.get("event_id"))}
    with saga_logging(**ids), consuming_span(envelope, service=service):
        yield consumption
        if consumption.duplicate:
            EVENTS_DUPLICATE.labels(service, event).inc()
            logger.info("%s: %s %s already consumed", service, event, ids["event_id"])
        else:
            EVENTS_CONSUMED.labels(service, event).inc()
            logger.info("%s: consumed %s", service, event)
    CONSUMER_DURATION.labels(service).observe(time.perf_counter() - started)
