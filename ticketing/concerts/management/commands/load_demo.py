"""Create a few concerts with performances and seats; running it again changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ticketing.concerts.demo import demo_big_hall_load, demo_catalogue_load, demo_onsale_load
from ticketing.concerts.services import DB
from ticketing.young_tables import analyze


class Command(BaseCommand):
    help = "Load demo concerts, performances and seats (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--big-hall",
            type=int,
            metavar="N",
            help="also ensure a load-test performance of N seats (found again by its venue, 'Big Hall')",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        first_day = datetime.now(ZoneInfo("Asia/Seoul")).replace(hour=19, minute=30, second=0, microsecond=0)
        created = demo_catalogue_load(first_day=first_day + timedelta(days=30))
        self.stdout.write(f"demo catalogue: {created} seats created")
        opens_at = timezone.now() + timedelta(seconds=settings.DEMO_SALES_OPEN_IN_SECONDS)
        onsale = demo_onsale_load(opens_at=opens_at, starts_at=first_day + timedelta(days=45))
        self.stdout.write(f"on-sale demo: performance {onsale.id} (waiting room) opens at {opens_at:%H:%M:%S %Z}")
        if seats := options.get("big_hall"):
            if seats < 1:
                self.stderr.write("--big-hall wants a positive number of seats")
                raise SystemExit(2)
            performance_id, added = demo_big_hall_load(seats=seats, starts_at=first_day + timedelta(days=60))
            self.stdout.write(f"big hall: performance {performance_id}, {added} seats created")
        analyze(using=DB)  # fresh seats: plan with statistics at once, not after autovacuum's first pass
