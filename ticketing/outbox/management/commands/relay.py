from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ticketing.outbox.listener import run_relay


class Command(BaseCommand):
    help = "Relay the outboxes of the service databases to the broker as soon as they commit (runs forever)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--using", action="append", help="A database alias (default: every one).")

    def handle(self, *args: Any, **options: Any) -> None:
        aliases = options["using"] or list(settings.DATABASES)
        self.stdout.write(f"relaying {', '.join(aliases)}")
        run_relay(
            aliases,
            gather_seconds=settings.OUTBOX_RELAY_GATHER_SECONDS,
            mark_delay_seconds=settings.OUTBOX_RELAY_MARK_DELAY_SECONDS,
        )
