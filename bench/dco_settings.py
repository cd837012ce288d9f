"""Django settings for benchmarking the ``django-celery-outbox`` package (PyPI) next to our relay.

Configured the way the package's README says: ``django_celery_outbox`` in INSTALLED_APPS,
``CELERY_OUTBOX_APP`` naming an ``OutboxCelery`` app (bench/dco_app.py), one PostgreSQL database.
Only ``bench.relay`` uses it, in a subprocess of its own, with:

    DCO_DATABASE_URL       the benchmark's own database
    CELERY_BROKER_URL      the benchmark's own RabbitMQ vhost
    DCO_CONFIRM_PUBLISH=1  Celery's ``broker_transport_options = {"confirm_publish": True}``
    DCO_METRICS=0          ``MONITORING_METRICS_ENABLED = False`` (the package's StatsD metrics off)
"""

from __future__ import annotations

import os
from typing import Any

import dj_database_url

SECRET_KEY = os.environ.get("SECRET_KEY") or "bench-dco-only"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_celery_outbox"]
DATABASES = {"default": dj_database_url.parse(os.environ["DCO_DATABASE_URL"], conn_max_age=600)}

CELERY_OUTBOX_APP = "bench.dco_app.app"
MONITORING_METRICS_ENABLED = os.environ.get("DCO_METRICS", "1") != "0"

CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {"confirm_publish": True} if os.environ.get("DCO_CONFIRM_PUBLISH") == "1" else {}
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
