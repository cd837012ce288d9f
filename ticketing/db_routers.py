"""Send each app's models, migrations and queries to its service's database.

accounts (with Django's own apps and the beat schedule) lives in ``default``; concerts and payments
in databases of their own. The outbox and idempotency apps' tables exist in every service database: its models have
no home of their own, so every query on them names its database with ``using=``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from ticketing.events.catalogue import CATALOGUE

APP_DATABASES = {service.name: service.database for service in CATALOGUE.services}
SHARED_APPS = {"outbox", "idempotency"}


def database_for_app(app_label: str) -> str:
    return APP_DATABASES.get(app_label, "default")


class ServiceRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return self._db_for(model, hints)

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return self._db_for(model, hints)

    def _db_for(self, model: type[Model], hints: dict[str, Any]) -> str | None:
        if model._meta.app_label in SHARED_APPS:
            instance = hints.get("instance")
            return instance._state.db if instance is not None else None
        return database_for_app(model._meta.app_label)

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        # Rows of different services never point at each other; they share plain ids only.
        return obj1._state.db == obj2._state.db

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        if app_label in SHARED_APPS:
            return True
        return database_for_app(app_label) == db
