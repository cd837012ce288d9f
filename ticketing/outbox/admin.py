"""Outbox and inbox rows of each service database, each on a page of its own."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ticketing.admin_base import ReadOnlyServiceModelAdmin

from . import models
from .relay import replay


class OutboxAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["id", "event", "correlation_id", "state", "attempts", "next_attempt_at", "created_at", "sent_at"]
    list_filter = ["state", "event", "created_at"]
    search_fields = ["=correlation_id", "=aggregate_id", "=event_id"]
    readonly_fields = [f.name for f in models.OutboxMessage._meta.fields]
    actions = ["publish_again"]

    @admin.action(description="Publish again (consumers ignore what they already have)")
    def publish_again(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = replay(using=self.db(), ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} message(s) will be published again.", messages.SUCCESS)


class InboxAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["event_id", "event", "correlation_id", "received_at"]
    list_filter = ["event", "received_at"]
    search_fields = ["=correlation_id", "=event_id"]


@admin.register(models.AccountsOutboxMessage)
class AccountsOutboxAdmin(OutboxAdmin):
    using = "default"


@admin.register(models.ConcertsOutboxMessage)
class ConcertsOutboxAdmin(OutboxAdmin):
    using = "concerts"


@admin.register(models.PaymentsOutboxMessage)
class PaymentsOutboxAdmin(OutboxAdmin):
    using = "payments"


@admin.register(models.AccountsInboxMessage)
class AccountsInboxAdmin(InboxAdmin):
    using = "default"


@admin.register(models.ConcertsInboxMessage)
class ConcertsInboxAdmin(InboxAdmin):
    using = "concerts"


@admin.register(models.PaymentsInboxMessage)
class PaymentsInboxAdmin(InboxAdmin):
    using = "payments"
