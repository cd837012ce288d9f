"""Outbox, inbox and dead-letter rows of each service database, each on a page of its own."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ticketing.admin_base import ReadOnlyServiceModelAdmin

from .models import SERVICE_PROXIES, DeadLetter, OutboxMessage, OutboxState
from .relay import replay
from .services import dead_letters_replay

# Publishing or replaying events changes what the services do: it needs a permission of its own, not
# just the right to look (a superuser has every permission).
REPLAY_OUTBOX = "outbox.replay_outboxmessage"
REPLAY_DEAD_LETTERS = "outbox.replay_deadletter"


def deleted_after(at: datetime | None, seconds: int) -> datetime | None:
    return at + timedelta(seconds=seconds) if at else None


class OutboxAdmin(ReadOnlyServiceModelAdmin):
    list_display = [
        "id",
        "event",
        "correlation_id",
        "state",
        "attempts",
        "next_attempt_at",
        "created_at",
        "sent_at",
        "deleted_after",
    ]
    list_filter = ["state", "event", "created_at"]
    search_fields = ["=correlation_id", "=aggregate_id", "=event_id"]
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]
    actions = ["publish_again"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REPLAY_OUTBOX)

    @admin.display(description="deleted after (retention)")
    def deleted_after(self, row: OutboxMessage) -> datetime | None:
        if row.state == OutboxState.SENT:
            return deleted_after(row.sent_at, settings.RETENTION_SECONDS)
        if row.state == OutboxState.DEAD:
            return deleted_after(row.created_at, settings.DEAD_RETENTION_SECONDS)
        return None

    @admin.action(description="Publish again (consumers ignore what they already have)", permissions=["replay"])
    def publish_again(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = replay(using=self.db(), ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} message(s) will be published again.", messages.SUCCESS)


class InboxAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["event_id", "event", "correlation_id", "received_at"]
    list_filter = ["event", "received_at"]
    search_fields = ["=correlation_id", "=event_id"]


class DeadLetterAdmin(ReadOnlyServiceModelAdmin):
    list_display = [
        "event_id",
        "event",
        "correlation_id",
        "attempts",
        "error",
        "created_at",
        "replayed_at",
        "deleted_after",
    ]
    list_filter = ["event", "created_at", "replayed_at"]
    search_fields = ["=correlation_id", "=event_id"]
    readonly_fields = ["event_id", "event", "correlation_id", "envelope", "error", "attempts", "created_at"]
    actions = ["replay_to_consumer"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REPLAY_DEAD_LETTERS)

    @admin.display(description="deleted after (DEAD_RETENTION_SECONDS)")
    def deleted_after(self, row: DeadLetter) -> datetime | None:
        return deleted_after(row.created_at, settings.DEAD_RETENTION_SECONDS)

    @admin.action(
        description="Replay to the consumer (after a fix; the inbox keeps it exactly-once)", permissions=["replay"]
    )
    def replay_to_consumer(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = dead_letters_replay(using=self.db(), event_ids=list(queryset.values_list("event_id", flat=True)))
        self.message_user(request, f"{count} message(s) sent to the consumer again.", messages.SUCCESS)


ADMINS: dict[str, type[admin.ModelAdmin]] = {
    "OutboxMessage": OutboxAdmin,
    "InboxMessage": InboxAdmin,
    "DeadLetter": DeadLetterAdmin,
}

for model_name, proxies in SERVICE_PROXIES.items():
    for service, proxy in proxies.items():
        base = ADMINS[model_name]
        admin.site.register(
            proxy, type(f"{proxy.__name__}Admin", (base,), {"using": settings.SERVICE_DATABASES[service]})
        )
