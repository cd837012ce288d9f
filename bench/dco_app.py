"""The Celery app of the django-celery-outbox benchmark (``CELERY_OUTBOX_APP``), as the package's README shows."""

from __future__ import annotations

import os
from typing import Any

from django_celery_outbox import OutboxCelery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.dco_settings")

app = OutboxCelery("bench_dco")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUE = "bench_dco"


@app.task(name="bench.dco_handle_event")
def handle_event(envelope: dict[str, Any]) -> None:
    """Never run: nothing consumes the benchmark queue."""
