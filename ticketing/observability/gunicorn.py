"""gunicorn settings (``--config python:ticketing.observability.gunicorn``): forget a dead worker's live gauges."""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from .metrics import mark_process_dead

    mark_process_dead(worker.pid)
