"""Create a few concerts with performances and seats; running it again changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand

from ticketing.concerts.services import demo_catalogue_load


class Command(BaseCommand):
    help = "Load demo concerts, performances and seats (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        first_day = datetime.now(ZoneInfo("Asia/Seoul")).replace(hour=19, minute=30, second=0, microsecond=0)
        created = demo_catalogue_load(first_day=first_day + timedelta(days=30))
        self.stdout.write(f"demo catalogue: {created} seats created")
