"""Settings of the harness when it runs django-celery-outbox: the project's own, plus that package, configured
as its README says (``CELERY_OUTBOX_APP`` naming an ``OutboxCelery`` app built from the Django settings).

The package keeps its table in one database, our services each in their own: a router sends its table to
the database of the transaction at hand (``outbox_database``), and one ``celery_outbox_relay`` runs per
service database, ``BENCH_DCO_DATABASE`` naming the database that is ``default`` for it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from ticketing.settings import *  # noqa: F403
from ticketing.settings import DATABASE_ROUTERS, DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_celery_outbox"]
DATABASE_ROUTERS = ["bench.saga_settings.OutboxDatabaseRouter", *DATABASE_ROUTERS]
CELERY_OUTBOX_APP = "bench.saga_settings.dco_app"
# Its StatsD metrics are on by default; with no StatsD agent here each one would only log a refusal.
MONITORING_METRICS_ENABLED = False

DCO_APP_LABEL = "django_celery_outbox"
if relayed := os.environ.get("BENCH_DCO_DATABASE"):
    DATABASES = {**DATABASES, "default": DATABASES[relayed]}
_database: ContextVar[str] = ContextVar("dco_database", default="default")


@contextlib.contextmanager
def outbox_database(alias: str) -> Iterator[None]:
    token = _database.set(alias)
    try:
        yield
    finally:
        _database.reset(token)


class OutboxDatabaseRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return _database.get() if model._meta.app_label == DCO_APP_LABEL else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return True if app_label == DCO_APP_LABEL else None


def _make_app() -> Any:
    from django_celery_outbox import OutboxCelery

    # Not the current app: the project's own Celery app stays the one its tasks and relay use.
    app = OutboxCelery("ticketing-dco", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    from celery_app import app as project_app

    app.conf.task_queues = project_app.conf.task_queues  # declared with their dead-letter exchange
    return app


def __getattr__(name: str) -> Any:
    # Built on first use, after Django's settings are loaded (this module is them).
    if name == "dco_app":
        globals()["dco_app"] = app = _make_app()
        return app
    raise AttributeError(name)
