from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from ticketing.admin_base import ReadOnlyServiceModelAdmin, ServiceModelAdmin
from ticketing.outbox.selectors import saga_timeline, saga_trace_id

from .models import CheckIn, Concert, OfferSeat, Performance, Reservation, Seat, Ticket, WaitlistEntry, WaitlistOffer
from .services import DB


class PerformanceInline(admin.TabularInline):
    model = Performance
    extra = 0


@admin.register(Concert)
class ConcertAdmin(ServiceModelAdmin):
    list_display = ["id", "title", "title_en", "artist"]
    search_fields = ["title", "title_en", "artist"]
    inlines = [PerformanceInline]

    def get_formset_kwargs(self, request: Any, obj: Any, inline: Any, prefix: str) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        kwargs["queryset"] = inline.get_queryset(request).using(DB)
        return kwargs


@admin.register(Performance)
class PerformanceAdmin(ServiceModelAdmin):
    list_display = ["id", "concert", "starts_at", "venue", "sales_open_at", "queue"]
    list_filter = ["queue", "venue", "starts_at"]
    search_fields = ["concert__title", "concert__title_en", "venue"]
    list_select_related = ["concert"]


@admin.register(Seat)
class SeatAdmin(ServiceModelAdmin):
    list_display = ["id", "performance", "label", "grade", "price", "status"]
    list_filter = ["status", "grade", "performance__concert"]
    search_fields = ["label", "=id", "performance__concert__title"]
    list_select_related = ["performance__concert"]
    raw_id_fields = ["performance"]
    # Only the saga moves a seat between AVAILABLE, HELD and SOLD (through the transition table).
    readonly_fields = ["status"]


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["id", "user_id", "seats", "amount", "status", "saga_step", "reason", "created_at"]
    list_filter = ["status", "saga_step", "created_at"]
    search_fields = ["=id", "=user_id", "=lines__seat__id"]
    readonly_fields = ["seats", "timeline"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Reservation]:
        return super().get_queryset(request).prefetch_related("lines__seat")

    @admin.display(description="Seats")
    def seats(self, obj: Reservation) -> str:
        return ", ".join(f"{line.seat.label} (#{line.seat_id})" for line in obj.lines.all())

    @admin.display(description="Saga timeline (outbox and inbox rows of every service)")
    def timeline(self, obj: Reservation) -> str:
        rows = saga_timeline(correlation_id=str(obj.id))
        trace_id = saga_trace_id(rows) or "none (tracing off)"
        steps = format_html_join(
            "\n",
            "<div>{} &nbsp; {} &nbsp; <b>{}</b> &nbsp; {} {} &nbsp; {}</div>",
            ((r.at, gap(r.since_previous), r.service, r.kind, r.event, r.detail) for r in rows),
        )
        return format_html("<div>trace id: <code>{}</code></div>\n{}", trace_id, steps)


class CheckInInline(admin.TabularInline):
    model = CheckIn
    extra = 0
    can_delete = False
    fields = ("at", "outcome", "staff_user_id")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Ticket)
class TicketAdmin(ReadOnlyServiceModelAdmin):
    """Tickets change only through the saga (issue, void) and the door (check-in)."""

    list_display = ["id", "reservation", "seat", "performance", "user_id", "status", "issued_at", "checked_in_at"]
    list_filter = ["status", "performance__concert"]
    search_fields = ["=id", "=reservation__id", "=user_id", "seat__label"]
    list_select_related = ["reservation", "seat", "performance__concert"]
    inlines = [CheckInInline]

    def get_formset_kwargs(self, request: Any, obj: Any, inline: Any, prefix: str) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        kwargs["queryset"] = inline.get_queryset(request).using(DB)
        return kwargs


@admin.register(CheckIn)
class CheckInAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["id", "ticket", "outcome", "at", "staff_user_id"]
    list_filter = ["outcome", "at"]
    search_fields = ["=ticket__id", "=staff_user_id"]
    list_select_related = ["ticket"]


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(ReadOnlyServiceModelAdmin):
    """Places in waiting lists, in line order per performance and grade (joined through the API and shop)."""

    list_display = ["id", "performance", "grade", "seats", "user_id", "status", "created_at"]
    list_filter = ["status", "grade", "performance__concert"]
    search_fields = ["=id", "=user_id", "=performance__id"]
    list_select_related = ["performance__concert"]
    ordering = ["performance_id", "grade", "id"]


class OfferSeatInline(admin.TabularInline):
    model = OfferSeat
    extra = 0
    can_delete = False
    fields = ("seat", "open")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WaitlistOffer)
class WaitlistOfferAdmin(ReadOnlyServiceModelAdmin):
    list_display = ["id", "performance", "user_id", "status", "created_at", "expires_at", "reservation"]
    list_filter = ["status", "performance__concert"]
    search_fields = ["=id", "=user_id", "=reservation__id"]
    list_select_related = ["performance__concert", "reservation"]
    inlines = [OfferSeatInline]

    def get_formset_kwargs(self, request: Any, obj: Any, inline: Any, prefix: str) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        kwargs["queryset"] = inline.get_queryset(request).using(DB)
        return kwargs


def gap(seconds: float | None) -> str:
    """The time since the saga's previous step, as the timeline shows it."""
    return "start" if seconds is None else f"+{seconds * 1000:.0f} ms" if seconds < 10 else f"+{seconds:.1f} s"
