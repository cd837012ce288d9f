from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ticketing.audit.invariants import audit, dead_outbox_rows
from ticketing.audit.repair import repair


class Command(BaseCommand):
    help = "Check the saga invariants (docs/CONTRACT.md §6) across the three databases; exit 1 naming every violation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--idle", action="store_true", help="The system is idle: every outbox row must be sent.")
        parser.add_argument(
            "--repair", action="store_true", help="First drive stuck sagas to a terminal state, with compensation."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["repair"]:
            for action in repair() or ["nothing to repair"]:
                self.stdout.write(f"repair: {action}")
        for alias, count in dead_outbox_rows().items():
            self.stdout.write(f"note: {count} dead outbox rows in {alias} (see the admin)")
        violations = audit(idle=options["idle"])
        for violation in violations:
            self.stderr.write(violation)
        if violations:
            raise CommandError(f"{len(violations)} invariant violation(s)")
        self.stdout.write("all saga invariants hold")
