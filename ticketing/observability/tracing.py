"""One trace per saga: W3C trace context carried in every outbox row and every message.

``publish()`` stores the caller's ``traceparent`` with the outbox row; the relay opens a span under it
(from the row's commit to its publish) and passes that span on in the message's headers; the consumer
continues the trace from the envelope. Off unless configured by the standard ``OTEL_*`` variables:
``OTEL_TRACES_EXPORTER=otlp`` (or ``console``), or an ``OTEL_EXPORTER_OTLP_ENDPOINT``. With tracing
off every function here costs next to nothing and ``traceparent`` stays empty.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.utils.module_loading import import_string
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("ticketing")
_enabled = False


def exporter_name() -> str:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or name == "none":
        return ""
    if not name and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return "otlp"
    return name


def setup() -> None:
    """Install the SDK and the Django, Celery and psycopg2 instrumentation, if an exporter is configured."""
    global _enabled  # noqa: PLW0603 (once per process)
    name = exporter_name()
    if _enabled or not name:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "ticketing")})
    )
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:  # a dotted path to a SpanExporter class (the tests write spans to a file this way)
        provider.add_span_processor(SimpleSpanProcessor(import_string(name)()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    Psycopg2Instrumentor().instrument(skip_dep_check=True)
    _enabled = True
    logger.debug("tracing on, exporter %s", name)


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the current span, or "" when there is none (tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def context_of(traceparent: str | None) -> context.Context | None:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


def trace_id_of(traceparent: str | None) -> str:
    """The trace id inside a ``traceparent`` (what a tracing UI searches for)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else ""


def relay_span_headers(*, traceparent: str, event: str, database: str, committed_at: datetime) -> dict[str, str]:
    """Record the relay's hop of one row (commit to publish) and return the headers that continue it."""
    parent = context_of(traceparent)
    if parent is None:
        return {}
    span = tracer.start_span(
        f"outbox relay {event}",
        context=parent,
        kind=SpanKind.PRODUCER,
        start_time=int(committed_at.timestamp() * 1e9),
        attributes={"messaging.destination.name": event, "db.name": database},
    )
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span))
    span.end()
    return headers


@contextmanager
def consuming_span(envelope: dict[str, Any], *, service: str) -> Iterator[Span]:
    """The consumer's span, a child of the message's producer whatever Celery's instrumentation did."""
    current = trace.get_current_span().get_span_context()
    parent = context_of(envelope.get("traceparent"))
    if current.is_valid and current.trace_id == trace.get_current_span(parent).get_span_context().trace_id:
        parent = None  # Celery's span already continues the relay's: nest under it
    attributes = {
        "messaging.operation": "process",
        "messaging.destination.name": str(envelope.get("event")),
        "ticketing.service": service,
        "ticketing.correlation_id": str(envelope.get("correlation_id")),
        "ticketing.event_id": str(envelope.get("event_id")),
    }
    name = f"consume {envelope.get('event')}"
    with tracer.start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes) as span:
        yield span
