"""The metrics every process records, in Prometheus' multiprocess mode.

Each process (gunicorn worker, Celery pool child, the relay process) writes its samples to files under
``PROMETHEUS_MULTIPROC_DIR`` (set by the settings, under the var directory, before this module is
imported); ``GET /metrics`` merges them. Recording a sample costs a few microseconds and no query.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone
from prometheus_client import Counter, Histogram, multiprocess, values

HOST = socket.gethostname()
_identity = f"{HOST}_{os.getpid()}"


def process_identifier() -> str:
    # Host and pid: processes of several containers may share one metrics directory (and pid 1).
    # prometheus_client asks on every sample (to notice a fork); a cached answer spares a syscall.
    return _identity


def _forked() -> None:
    global _identity  # noqa: PLW0603 (the child's own identity)
    _identity = f"{HOST}_{os.getpid()}"


os.register_at_fork(after_in_child=_forked)


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier)

SAGA_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

SAGAS_STARTED = Counter("ticketing_sagas_started", "Bookings that started a saga (committed PENDING reservations).")
SAGAS_FINISHED = Counter("ticketing_sagas_finished", "Sagas that reached a terminal state, by that state.", ["outcome"])
SAGA_DURATION = Histogram(
    "ticketing_saga_duration_seconds", "From the booking to the saga's terminal state.", buckets=SAGA_BUCKETS
)
OUTBOX_PUBLISHED = Counter(
    "ticketing_outbox_published", "Outbox rows the broker confirmed, by service database.", ["database"]
)
RELAY_BATCH_SIZE = Histogram(
    "ticketing_relay_batch_size",
    "Rows claimed by one relay batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
EVENTS_CONSUMED = Counter(
    "ticketing_events_consumed", "Events a consumer applied (first delivery).", ["service", "event"]
)
EVENTS_DUPLICATE = Counter(
    "ticketing_events_duplicate",
    "Events a consumer had already applied (redeliveries, duplicate publishes): nothing happened.",
    ["service", "event"],
)
CONSUMER_DURATION = Histogram(
    "ticketing_consumer_duration_seconds",
    "Time to apply one event, inbox row included.",
    ["service"],
    buckets=FAST_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "ticketing_http_requests", "HTTP requests by view, method and status.", ["view", "method", "status"]
)
HTTP_DURATION = Histogram(
    "ticketing_http_request_duration_seconds", "HTTP request latency by view.", ["view"], buckets=FAST_BUCKETS
)
CACHE_FAIL_OPEN = Counter(
    "ticketing_cache_fail_open",
    "Requests served without the cache (its Redis did not answer), by use: throttle, login-delay.",
    ["use"],
)
WAITING_ROOM_ADMISSIONS = Counter(
    "ticketing_waiting_room_admissions", "Users admitted from a waiting room.", ["performance"]
)
WAITING_ROOM_FAST_ANSWERS = Counter(
    "ticketing_waiting_room_fast_answers",
    "Queue calls the web front answered itself, by cost: ticket (no Redis call), redis (one round trip).",
    ["cost"],
)


# A method no client can invent: anything else is counted as "other" (each label value is a series
# in every process's file).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_method_label(method: str | None) -> str:
    return method if method in HTTP_METHODS else "other"


def start_at_zero(counter: Counter, label_sets: Iterable[tuple[str, ...]]) -> None:
    """Create each known label set's series at 0 (Prometheus' advice): ``rate()`` and the alerts then
    work from the first scrape instead of from the first event."""
    for labels in label_sets:
        counter.labels(*labels)


def saga_outcomes_known(outcomes: Iterable[str]) -> None:
    """For concerts (at start): the states a saga can end in."""
    start_at_zero(SAGAS_FINISHED, ((outcome,) for outcome in outcomes))


def events_known(*, service: str, events: Iterable[str]) -> None:
    """For each consuming service (at start): the events it consumes."""
    start_at_zero(EVENTS_CONSUMED, ((service, event) for event in events))
    start_at_zero(EVENTS_DUPLICATE, ((service, event) for event in events))


def saga_started() -> None:
    SAGAS_STARTED.inc()


def saga_finished(*, outcome: str, started_at: datetime) -> None:
    SAGAS_FINISHED.labels(outcome).inc()
    SAGA_DURATION.observe(max((timezone.now() - started_at).total_seconds(), 0.0))


def relay_batch(*, database: str, claimed: int, sent: int) -> None:
    RELAY_BATCH_SIZE.observe(claimed)
    if sent:
        OUTBOX_PUBLISHED.labels(database).inc(sent)


def waiting_room_admitted(*, performance_id: int | str, count: int = 1) -> None:
    """For the waiting room: call when users are admitted (its length is a gauge, see ``gauges``)."""
    WAITING_ROOM_ADMISSIONS.labels(str(performance_id)).inc(count)


def waiting_room_fast_answer(*, redis_call: bool) -> None:
    """For the web front: a join or poll it answered without Django (with or without a Redis call)."""
    WAITING_ROOM_FAST_ANSWERS.labels("redis" if redis_call else "ticket").inc()


CACHE_USES = ("throttle", "login-delay")
start_at_zero(CACHE_FAIL_OPEN, ((use,) for use in CACHE_USES))


def cache_fail_open(*, use: str) -> None:
    CACHE_FAIL_OPEN.labels(use).inc()


def mark_process_dead(pid: int | None = None) -> None:
    """Drop the live gauges of a process that exited (gunicorn's child_exit, Celery's child shutdown)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(f"{HOST}_{pid or os.getpid()}")
