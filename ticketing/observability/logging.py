"""Log lines that say what happens to bookings: saga ids on every line, JSON on request, no idle noise.

``SagaContextFilter`` puts ``correlation_id`` and ``event_id`` (of the event being consumed, or given
with ``extra=``) and the trace id on every record; ``JsonFormatter`` writes one JSON object a line
(``LOG_FORMAT=json``); ``QuietHousekeeping`` drops the INFO lines Celery writes for the periodic
safety-net tasks (beat sends them every second, whether or not there is anything to do).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

saga_context: ContextVar[dict[str, str] | None] = ContextVar("saga_context", default=None)

SAGA_FIELDS = ("correlation_id", "event_id")
HOUSEKEEPING_TASKS = ("outbox.relay", "outbox.retention", "idempotency.expire", "concerts.sweep", "audit.repair")


@contextmanager
def saga_logging(*, correlation_id: str, event_id: str) -> Iterator[None]:
    """Every line logged inside names this saga and event."""
    token = saga_context.set({"correlation_id": correlation_id, "event_id": event_id})
    try:
        yield
    finally:
        saga_context.reset(token)


class SagaContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = saga_context.get() or {}
        for field in SAGA_FIELDS:
            if not getattr(record, field, None) and field in current:
                setattr(record, field, current[field])
        span = trace.get_current_span().get_span_context()
        if span.is_valid and not getattr(record, "trace_id", None):
            record.trace_id = format(span.trace_id, "032x")
        ids = [f"{field}={getattr(record, field)}" for field in SAGA_FIELDS if getattr(record, field, None)]
        record.saga = f" [{' '.join(ids)}]" if ids else ""
        return True


# Said once per message by Celery, and said better by the consumer's own line ("payments: consumed ...").
TASK_CHATTER = (" received", " succeeded in ")


class QuietHousekeeping(logging.Filter):
    """Below WARNING, say nothing about the periodic safety-net tasks (they run whether or not there is
    work) nor repeat per task what the consumer's line says; failures and retries still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or not record.name.startswith("celery"):
            return True
        message = record.getMessage()
        if record.name in ("celery.worker.strategy", "celery.app.trace") and any(c in message for c in TASK_CHATTER):
            return False
        return not any(task in message for task in HOUSEKEEPING_TASKS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in (*SAGA_FIELDS, "trace_id"):
            value = getattr(record, field, None)
            if value:
                line[field] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
