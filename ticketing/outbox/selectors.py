"""Reads across the outbox and inbox tables of every service database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from ticketing.observability.gauges import Sample
from ticketing.observability.tracing import trace_id_of

from .models import DeadLetter, InboxMessage, OutboxMessage, OutboxState


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    service: str
    kind: str
    event: str
    detail: str
    trace_id: str = ""
    since_previous: float | None = None  # seconds since the row before it in the saga


def saga_timeline(*, correlation_id: str) -> list[TimelineRow]:
    """Every outbox and inbox row of one saga, in every service database, oldest first."""
    rows: list[TimelineRow] = []
    for service, alias in settings.SERVICE_DATABASES.items():
        for out in OutboxMessage.objects.using(alias).filter(correlation_id=correlation_id):
            detail = f"{out.state}, attempts {out.attempts} {out.last_error}".strip()
            trace_id = trace_id_of(out.traceparent)
            rows.append(TimelineRow(out.created_at, service, "published", out.event, detail, trace_id))
        for inbox in InboxMessage.objects.using(alias).filter(correlation_id=correlation_id):
            rows.append(TimelineRow(inbox.received_at, service, "consumed", inbox.event, str(inbox.event_id)))
    rows.sort(key=lambda row: row.at)
    return [
        replace(row, since_previous=(row.at - previous.at).total_seconds()) if previous else row
        for previous, row in zip([None, *rows], rows, strict=False)
    ]


def saga_moments(*, correlation_id: str, using: str, sent: str, consumed: tuple[str, ...]) -> dict[str, datetime]:
    """One database's own record of a saga: when its ``sent`` event went to the broker (key ``sent``) and
    when each event of ``consumed`` reached it (keyed by name). Two index lookups, no other database."""
    moments: dict[str, datetime] = {}
    rows = OutboxMessage.objects.using(using).filter(correlation_id=correlation_id, event=sent, sent_at__isnull=False)
    if (sent_at := rows.order_by("id").values_list("sent_at", flat=True).first()) is not None:
        moments["sent"] = sent_at
    inbox = InboxMessage.objects.using(using).filter(correlation_id=correlation_id, event__in=consumed)
    for event, received_at in inbox.order_by("received_at").values_list("event", "received_at"):
        moments.setdefault(event, received_at)
    return moments


def saga_trace_id(timeline: list[TimelineRow]) -> str:
    """The saga's trace id (what to search for in the tracing UI), "" when tracing was off."""
    return next((row.trace_id for row in timeline if row.trace_id), "")


def dead_aggregate_ids(*, using: str, event: str) -> QuerySet[OutboxMessage, str]:
    """Aggregates whose ``event`` could not be delivered (its outbox row is dead), as a subquery.

    Never loaded into memory: the caller filters its own rows with it, in its own database, and the
    database answers from the index of dead rows.
    """
    rows = OutboxMessage.objects.using(using).filter(event=event, state=OutboxState.DEAD).order_by()
    return rows.values_list("aggregate_id", flat=True)


def outbox_gauge_samples() -> Iterator[Sample]:
    """Backlog of every service database for /metrics: each figure one index lookup or index-only count."""
    now = timezone.now()
    for alias in settings.DATABASES:
        label = {"database": alias}
        outbox = OutboxMessage.objects.using(alias)
        pending = outbox.filter(state=OutboxState.PENDING)
        oldest = pending.order_by("id").values_list("created_at", flat=True).first()
        age = (now - oldest).total_seconds() if oldest else 0.0
        dead_letters = DeadLetter.objects.using(alias).filter(replayed_at__isnull=True).count()
        yield Sample("ticketing_outbox_pending", "Outbox rows not sent yet.", label, pending.count())
        yield Sample("ticketing_outbox_oldest_pending_age_seconds", "Age of the oldest unsent row.", label, age)
        yield Sample(
            "ticketing_outbox_dead",
            "Outbox rows given up on (replay them in the admin).",
            label,
            outbox.filter(state=OutboxState.DEAD).count(),
        )
        yield Sample("ticketing_dead_letters", "Consumed messages set aside, not replayed yet.", label, dead_letters)
