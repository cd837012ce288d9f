"""The relay process: one per deployment, relaying every service database as soon as it commits.

A trigger on the outbox table sends ``NOTIFY outbox_pending`` when a row is inserted,
delivered when (and only if) the inserting transaction commits. The relay process LISTENs on each
database and drains it when told, so a commit reaches the broker within milliseconds, and under load
(when a drain found more than a row per database) it waits ``gather_seconds`` before the next drain, so
that one drain publishes many rows in a batch. Between notifications it drains every ``idle_seconds``
anyway (for rows whose backoff ended, or a notification lost with a dropped connection).
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterable

from django.db import connections

from .relay import relay_pending

logger = logging.getLogger(__name__)

CHANNEL = "outbox_pending"


def listen(alias: str) -> object:
    """Start listening on ``alias``; return the raw connection to wait on."""
    connection = connections[alias]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {CHANNEL}")
    return connection.connection


def run_relay(aliases: Iterable[str], *, idle_seconds: float = 1.0, gather_seconds: float = 0.0) -> None:
    aliases = list(aliases)
    while True:
        try:
            serve(aliases, idle_seconds=idle_seconds, gather_seconds=gather_seconds)
        except Exception:  # a database or the broker went away: start over on fresh connections
            logger.exception("relay: restarting in 1 s")
            for alias in aliases:
                connections[alias].close()
            time.sleep(1)


def serve(aliases: list[str], *, idle_seconds: float, gather_seconds: float) -> None:
    listening = {listen(alias): alias for alias in aliases}
    due = set(aliases)  # drain everything once at start
    last_full = time.monotonic()
    while True:
        drained_at = time.monotonic()
        sent = sum(relay_pending(using=alias, max_batches=50) for alias in sorted(due))
        if sent > len(due):
            # Busy (more than a row per database): let commits gather for a moment, so that the next
            # drain publishes them together. A quiet relay answers the next commit at once.
            time.sleep(max(0.0, drained_at + gather_seconds - time.monotonic()))
        # A notification read in passing by the relay's own queries is already in ``notifies``.
        waiting = any(raw.notifies for raw in listening)  # type: ignore[attr-defined]
        ready, _, _ = select.select(list(listening), [], [], 0 if waiting else idle_seconds)
        for raw in ready:
            raw.poll()
        due = {listening[raw] for raw in listening if raw.notifies}  # type: ignore[attr-defined]
        for raw in listening:
            raw.notifies.clear()  # type: ignore[attr-defined]
        if time.monotonic() - last_full >= idle_seconds:
            due |= set(aliases)
            last_full = time.monotonic()
