"""Demo data: the concerts `make run` shows, the on-sale day's queued performance, a big hall for load tests."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta

from django.db import transaction

from . import waiting_room
from .models import Concert, Performance, Seat

DB = "concerts"
DEMO_CONCERTS = [
    (
        "아이유 콘서트: 황금빛 저녁",
        "IU Concert: Golden Evening",
        "아이유 (IU)",
        ["잠실 올림픽주경기장", "부산 사직실내체육관"],
    ),
    ("서울 시립 교향악단 신년 음악회", "Seoul Philharmonic New Year Concert", "서울시향", ["예술의전당 콘서트홀"]),
    ("인디 록 페스티벌 2027", "Indie Rock Festival 2027", "잔나비, 새소년", ["KSPO DOME", "인천 파라다이스시티"]),
]
DEMO_GRADES = [("VIP", 180_000, 8), ("R", 140_000, 12), ("S", 110_000, 12), ("A", 80_000, 16)]


def demo_catalogue_load(*, first_day: datetime) -> int:
    """Idempotent: concerts are found by title, performances by venue, seats by label."""
    created = 0
    with transaction.atomic(using=DB):
        for index, (title, title_en, artist, venues) in enumerate(DEMO_CONCERTS):
            concert, _ = Concert.objects.using(DB).get_or_create(
                title=title, defaults={"title_en": title_en, "artist": artist}
            )
            for day, venue in enumerate(venues):
                starts_at = first_day + timedelta(days=7 * index + day)
                performance, _ = Performance.objects.using(DB).get_or_create(
                    concert=concert, venue=venue, defaults={"starts_at": starts_at}
                )
                existing = set(Seat.objects.using(DB).filter(performance=performance).values_list("label", flat=True))
                seats = [
                    Seat(performance=performance, label=f"{grade}-{number:02d}", grade=grade, price=price)
                    for grade, price, count in DEMO_GRADES
                    for number in range(1, count + 1)
                    if f"{grade}-{number:02d}" not in existing
                ]
                Seat.objects.using(DB).bulk_create(seats)
                created += len(seats)
    return created


ONSALE_TITLE = "온세일 데모: 대기열 공연"
ONSALE_VENUE = "고척스카이돔 (waiting room demo)"


def demo_onsale_load(*, opens_at: datetime, starts_at: datetime) -> Performance:
    """The demo's queued performance, whose sales open at ``opens_at``: set again (and its waiting room
    emptied) at every load, so that each start of the demo shows the pre-queue, the opening and admission.
    """
    with transaction.atomic(using=DB):
        concert, _ = Concert.objects.using(DB).get_or_create(
            title=ONSALE_TITLE, defaults={"title_en": "On-sale day demo: a queued performance", "artist": "Demo"}
        )
        performance, _ = Performance.objects.using(DB).get_or_create(
            concert=concert, venue=ONSALE_VENUE, defaults={"starts_at": starts_at}
        )
        performance.queue, performance.sales_open_at = True, opens_at
        performance.save(using=DB, update_fields=["queue", "sales_open_at"])
        existing = set(Seat.objects.using(DB).filter(performance=performance).values_list("label", flat=True))
        Seat.objects.using(DB).bulk_create(
            Seat(performance=performance, label=f"{grade}-{number:02d}", grade=grade, price=price)
            for grade, price, count in DEMO_GRADES
            for number in range(1, count + 1)
            if f"{grade}-{number:02d}" not in existing
        )
    # Without Redis the demo still loads; the waiting room is empty then anyway.
    with suppress(waiting_room.WaitingRoomUnavailable):
        waiting_room.queue_reset(performance_id=performance.id)
    return performance


BIG_HALL_TITLE = "부하 시험 공연 (Big Hall)"
BIG_HALL_VENUE = "Big Hall"
BIG_HALL_PRICE = 10_000


def demo_big_hall_load(*, seats: int, starts_at: datetime) -> tuple[int, int]:
    """One more performance of ``seats`` seats for load tests; (performance id, seats created).

    Idempotent: the performance is found by its concert and venue, seats by label, so running it again
    (or with a larger count) only adds what is missing.
    """
    with transaction.atomic(using=DB):
        concert, _ = Concert.objects.using(DB).get_or_create(
            title=BIG_HALL_TITLE, defaults={"title_en": "Load test (Big Hall)", "artist": "Load test"}
        )
        performance, _ = Performance.objects.using(DB).get_or_create(
            concert=concert, venue=BIG_HALL_VENUE, defaults={"starts_at": starts_at}
        )
        existing = set(Seat.objects.using(DB).filter(performance=performance).values_list("label", flat=True))
        missing = [
            Seat(performance=performance, label=label, grade="S", price=BIG_HALL_PRICE)
            for label in (f"B-{number:06d}" for number in range(1, seats + 1))
            if label not in existing
        ]
        Seat.objects.using(DB).bulk_create(missing, batch_size=2000)
    return performance.id, len(missing)
