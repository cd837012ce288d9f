"""The outbox (events a service has committed to announce) and the inbox (events it has consumed).

Both tables exist in every service database; a row always lives in the database of the service that
wrote it, so every query names its database with ``using=``.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ticketing.events.catalogue import CATALOGUE

SCHEMA_VERSION = 1


class OutboxState(models.TextChoices):
    PENDING = "PENDING", "pending"
    SENT = "SENT", "sent"
    DEAD = "DEAD", "dead"


class OutboxMessage(models.Model):
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    correlation_id = models.CharField(max_length=64, help_text="The saga this event belongs to.")
    causation_id = models.UUIDField(null=True, blank=True, help_text="The event that caused this one.")
    schema_version = models.PositiveSmallIntegerField(default=SCHEMA_VERSION)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=8, choices=OutboxState.choices, default=OutboxState.PENDING)
    # Doubles as the claim lease: a relay that claims a row moves it forward, so no other relay
    # takes the row while it is being published, and a relay that died lets it fall due again.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # The claim that holds the row: set by each claim, cleared when the row is marked. Every write after
    # the claim is fenced on it, so a relay whose lease ran out (another claimed the row) writes nothing.
    lease = models.UUIDField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    traceparent = models.CharField(max_length=55, blank=True, default="", help_text="W3C trace context of the saga.")

    class Meta:
        ordering = ["id"]
        permissions = [("replay_outboxmessage", "Can publish outbox messages again")]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                name="outbox_due_idx",
                condition=Q(state="PENDING"),
            ),
            # The claim walks pending rows in id order; without this PostgreSQL sorts them (measured in
            # bench/relay.py: 878 against 1,546 rows/s behind 200,000 sent rows).
            models.Index(fields=["id"], name="outbox_pending_id_idx", condition=Q(state="PENDING")),
            models.Index(
                fields=["correlation_id", "id"],
                name="outbox_unsent_corr_idx",
                condition=Q(state="PENDING"),
            ),
            models.Index(fields=["correlation_id"], name="outbox_corr_idx"),
            # Retention and the sweeper find old sent rows and dead rows through these, whatever the
            # history (a row changes state anyway, so the update is never HOT: one more index costs little).
            models.Index(fields=["sent_at"], name="outbox_sent_at_idx", condition=Q(state="SENT")),
            models.Index(fields=["created_at"], name="outbox_dead_created_idx", condition=Q(state="DEAD")),
            models.Index(fields=["event", "aggregate_id"], name="outbox_dead_aggregate_idx", condition=Q(state="DEAD")),
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.id} ({self.state})"

    def envelope(self) -> dict[str, object]:
        """The message as it travels: JSON only."""
        return {
            "event_id": str(self.event_id),
            "event": self.event,
            "schema_version": self.schema_version,
            "occurred_at": self.created_at.isoformat(),
            "aggregate_id": self.aggregate_id,
            "correlation_id": self.correlation_id,
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "traceparent": self.traceparent or None,
            "payload": self.payload,
        }


class InboxMessage(models.Model):
    event_id = models.UUIDField(primary_key=True)
    event = models.CharField(max_length=64)
    correlation_id = models.CharField(max_length=64, db_index=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["received_at"], name="inbox_received_idx")]

    def __str__(self) -> str:
        return f"{self.event} {self.event_id}"


class Redelivery(models.Model):
    """How often a message came back after its worker died; past a bound it is set aside as dead."""

    event_id = models.UUIDField(primary_key=True)
    deliveries = models.PositiveIntegerField(default=1)
    envelope = models.JSONField()
    dead = models.BooleanField(default=False)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["dead", "last_seen_at"], name="redelivery_seen_idx")]

    def __str__(self) -> str:
        return f"{self.event_id} x{self.deliveries}"


class DeadLetter(models.Model):
    """A consumed message that could not be handled: kept with its error until someone replays it."""

    event_id = models.UUIDField(primary_key=True)
    event = models.CharField(max_length=64)
    correlation_id = models.CharField(max_length=64, db_index=True)
    envelope = models.JSONField()
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("replay_deadletter", "Can replay dead letters to their consumer")]
        indexes = [
            models.Index(fields=["created_at"], name="deadletter_created_idx"),
            # /metrics counts the letters not replayed yet.
            models.Index(fields=["created_at"], name="deadletter_open_idx", condition=Q(replayed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"dead {self.event} {self.event_id}"


SERVICES = tuple(service.name for service in CATALOGUE.services)


def service_proxy(model: type[models.Model], service: str) -> type[models.Model]:
    """A proxy of ``model`` for one service database, so the admin lists each database on a page of its own."""
    name = f"{service.title()}{model.__name__}"
    meta = type("Meta", (), {"proxy": True, "verbose_name": f"{service} {model._meta.verbose_name}"})
    return type(name, (model,), {"__module__": __name__, "Meta": meta})


SERVICE_PROXIES: dict[str, dict[str, type[models.Model]]] = {
    model.__name__: {service: service_proxy(model, service) for service in SERVICES}
    for model in (OutboxMessage, InboxMessage, DeadLetter)
}
