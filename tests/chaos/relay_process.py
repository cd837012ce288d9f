"""A relay as a process of its own, for the chaos suite.

python -m tests.chaos.relay_process loop <alias>        relay until killed
python -m tests.chaos.relay_process die <alias>         claim, publish, then SIGKILL itself before
                                                        marking the rows sent (exits after 20 s
                                                        with nothing to claim)
"""

from __future__ import annotations

import os
import signal
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
django.setup()

from ticketing.outbox.broker import publish_batch  # noqa: E402
from ticketing.outbox.relay import claim_due_rows, messages_of, relay_pending  # noqa: E402


def loop(alias: str) -> None:
    while True:
        if not relay_pending(using=alias, batch_size=20):
            time.sleep(0.02)


def die_between_publish_and_mark(alias: str, *, give_up_after: float = 20.0) -> None:
    # Started near the end of the load, it may find nothing left to claim: then it exits instead.
    deadline = time.monotonic() + give_up_after
    while time.monotonic() < deadline:
        rows = claim_due_rows(using=alias, limit=5)
        if rows:
            publish_batch([message for row in rows for message in messages_of(row)])
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)


if __name__ == "__main__":
    mode, alias = sys.argv[1], sys.argv[2]
    (loop if mode == "loop" else die_between_publish_and_mark)(alias)
