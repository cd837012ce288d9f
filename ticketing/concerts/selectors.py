"""Reads of the concerts service."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .models import Concert, Performance, Reservation, Seat

DB = "concerts"


def concert_list() -> QuerySet[Concert]:
    performances = Performance.objects.using(DB).order_by("starts_at", "id")
    return Concert.objects.using(DB).prefetch_related(Prefetch("performances", queryset=performances))


def concert_get(*, concert_id: int) -> Concert | None:
    return concert_list().filter(pk=concert_id).first()


def performance_seats(*, performance_id: int) -> QuerySet[Seat] | None:
    if not Performance.objects.using(DB).filter(pk=performance_id).exists():
        return None
    return Seat.objects.using(DB).filter(performance_id=performance_id).order_by("id")


def reservation_list(*, user_id: int) -> QuerySet[Reservation]:
    return Reservation.objects.using(DB).filter(user_id=user_id).order_by("-id")


def reservation_get(*, user_id: int, reservation_id: int) -> Reservation | None:
    return reservation_list(user_id=user_id).filter(pk=reservation_id).first()
