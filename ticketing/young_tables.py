"""Young tables: a fresh database must not scan where an index exists, in its first minutes too.

PostgreSQL plans with the statistics ANALYZE gathered; autovacuum analyzes a table only after 50 rows
plus 10 % of it changed, checked once a minute. A table that grew from nothing since (the outbox, the
inbox, reservations, seats loaded by ``load_demo``) is planned from no statistics, and a plan on no
statistics may scan a table that has the index the query needs. Two remedies:

- the tables that grow fast get thresholds of their own (``YOUNG_TABLE_OPTIONS``), set after every
  ``migrate`` (``post_migrate``: a storage parameter, not a schema change, so it needs no migration);
- ``analyze()`` runs right after a bulk load (``load_demo``).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.db import connections, router

YOUNG_TABLE_OPTIONS = {
    "autovacuum_analyze_threshold": 20,
    "autovacuum_analyze_scale_factor": 0.02,
    "autovacuum_vacuum_threshold": 50,
    "autovacuum_vacuum_scale_factor": 0.05,
}


def young_tables(*, using: str, app_config: AppConfig | None = None) -> list[str]:
    """The tables of ``settings.YOUNG_TABLES`` that live in database ``using`` (of one app, if given)."""
    models = [apps.get_model(label) for label in settings.YOUNG_TABLES]
    return [
        model._meta.db_table
        for model in models
        if (app_config is None or model._meta.app_config is app_config) and router.allow_migrate_model(using, model)
    ]


def young_tables_tune(*, app_config: AppConfig, using: str = "default", **kwargs: Any) -> None:
    """post_migrate: give this app's fast-growing tables in ``using`` their autovacuum thresholds."""
    connection = connections[using]
    options = ", ".join(f"{name} = {value}" for name, value in YOUNG_TABLE_OPTIONS.items())
    with connection.cursor() as cursor:
        for table in young_tables(using=using, app_config=app_config):
            cursor.execute(f"ALTER TABLE {connection.ops.quote_name(table)} SET ({options})")


def analyze(*, using: str) -> None:
    """Gather statistics of the fast-growing tables of ``using`` now (after a bulk load)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        for table in young_tables(using=using):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
