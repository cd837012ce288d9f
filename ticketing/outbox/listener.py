"""The relay process: one per deployment, relaying every service database as soon as it commits.

A trigger on the outbox table sends ``NOTIFY outbox_pending`` when a row is inserted,
delivered when (and only if) the inserting transaction commits. The relay process LISTENs on each
database and drains it when told, so a commit reaches the broker within milliseconds, and under load
(when a drain found more than a row per database) it waits ``gather_seconds`` before the next drain, so
that one drain publishes many rows in a batch. Between notifications it drains every ``idle_seconds``
anyway (for rows whose backoff ended, or a notification lost with a dropped connection).

Wake-ups are coalesced: right before each claim the relay reads the notifications that came in and
forgets them, since that claim sees every row they announced; a drain thus carries whatever is there
and no empty drain follows it. The rows a drain sent are marked by the next claim's statement
(``DeferredMarks``), or alone when no claim comes within ``mark_delay_seconds``.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.db import connections

from .relay import DeferredMarks, marks_flush, relay_pending

logger = logging.getLogger(__name__)

CHANNEL = "outbox_pending"


def listen(alias: str) -> object:
    """Start listening on ``alias``; return the raw connection to wait on."""
    connection = connections[alias]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {CHANNEL}")
    return connection.connection


def take_notifications(raw: Any) -> None:
    """Read what came in and forget it: the claim about to run sees every row it announced."""
    raw.poll()
    raw.notifies.clear()


def run_relay(
    aliases: Iterable[str], *, idle_seconds: float = 1.0, gather_seconds: float = 0.0, mark_delay_seconds: float = 0.02
) -> None:
    aliases = list(aliases)
    while True:
        try:
            serve(
                aliases, idle_seconds=idle_seconds, gather_seconds=gather_seconds, mark_delay_seconds=mark_delay_seconds
            )
        except Exception:  # a database or the broker went away: start over on fresh connections
            logger.exception("relay: restarting in 1 s")
            for alias in aliases:
                connections[alias].close()
            time.sleep(1)


def serve(aliases: list[str], *, idle_seconds: float, gather_seconds: float, mark_delay_seconds: float) -> None:
    raws = {alias: listen(alias) for alias in aliases}
    listening = {raw: alias for alias, raw in raws.items()}
    marks = {alias: DeferredMarks() for alias in aliases}
    due = set(aliases)  # drain everything once at start
    last_full = time.monotonic()
    while True:
        drained_at = time.monotonic()
        sent = 0
        for alias in sorted(due):
            before_claim = partial(take_notifications, raws[alias])
            sent += relay_pending(using=alias, max_batches=50, marks=marks[alias], before_claim=before_claim)
        if sent > len(due):
            # Busy (more than a row per database): let commits gather for a moment, so that the next
            # drain publishes them together. A quiet relay answers the next commit at once.
            time.sleep(max(0.0, drained_at + gather_seconds - time.monotonic()))
        timeout = idle_seconds
        if any(mark.ids for mark in marks.values()):
            timeout = min(timeout, mark_delay_seconds)
        # A notification read in passing by the relay's own queries is already in ``notifies``.
        waiting = any(raw.notifies for raw in listening)  # type: ignore[attr-defined]
        ready, _, _ = select.select(list(listening), [], [], 0 if waiting else timeout)
        for raw in ready:
            raw.poll()
        due = {listening[raw] for raw in listening if raw.notifies}  # type: ignore[attr-defined]
        for raw in listening:
            raw.notifies.clear()  # type: ignore[attr-defined]
        if time.monotonic() - last_full >= idle_seconds:
            due |= set(aliases)
            last_full = time.monotonic()
        for alias, mark in marks.items():
            if mark.ids and alias not in due:  # no claim comes to carry them: mark now
                marks_flush(using=alias, marks=mark)
