"""Young tables: a fresh database plans with statistics, not blind (ticketing/young_tables.py)."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.db import connections

from tests.conftest import all_databases
from ticketing.young_tables import YOUNG_TABLE_OPTIONS

pytestmark = [all_databases]


def reloptions(alias: str, table: str) -> set[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
        (options,) = cursor.fetchone()
    return set(options or [])


def test_migrate_gives_the_fast_growing_tables_early_autovacuum_thresholds() -> None:
    # given the test databases, migrated as any fresh database is
    expected = {f"{name}={value}" for name, value in YOUNG_TABLE_OPTIONS.items()}

    # then the seats, the payments and each database's outbox and inbox carry the thresholds
    assert expected <= reloptions("concerts", "concerts_seat")
    assert expected <= reloptions("payments", "payments_payment")
    for alias in ("default", "concerts", "payments"):
        assert expected <= reloptions(alias, "outbox_outboxmessage")
        assert expected <= reloptions(alias, "outbox_inboxmessage")
    # and a table that stays small keeps the defaults
    assert reloptions("concerts", "concerts_concert") == set()


def test_load_demo_leaves_the_seats_it_loaded_analyzed() -> None:
    # when the demo is loaded with a big hall into a fresh database
    call_command("load_demo", big_hall=500, stdout=io.StringIO())

    # then the planner knows the seats table's size from statistics, not from a guess
    with connections["concerts"].cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'concerts_seat'")
        (reltuples,) = cursor.fetchone()
    assert reltuples >= 500
