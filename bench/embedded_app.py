"""The Celery application of ``bench.embedded``: one task that notes its argument, on the embedded broker.

Configured like the project's own (JSON, late acks, prefetch 1, 50 ms polling) from the environment
that ``bench.embedded`` sets: BENCH_BROKER_DIR, BENCH_TRANSPORT (a kombu transport class), BENCH_DONE
(the file each run task appends a line to). ``python -m bench.embedded_app produce N`` sends N tasks.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from celery import Celery

BROKER_DIR = Path(os.environ.get("BENCH_BROKER_DIR", "var/bench-embedded"))
DONE = Path(os.environ.get("BENCH_DONE", BROKER_DIR / "done.txt"))

app = Celery("bench-embedded")
app.conf.update(
    broker_url="filesystem://",
    broker_transport=os.environ.get("BENCH_TRANSPORT", "ticketing.embedded_broker:Transport"),
    broker_transport_options={
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "claimed_folder": str(BROKER_DIR / "claimed"),
        "unreadable_folder": str(BROKER_DIR / "unreadable"),
        "store_processed": False,
        "polling_interval": 0.05,
    },
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue="bench",
)


@app.task(name="bench.note")
def note(number: int) -> None:
    # One short line per run, appended: lines of concurrent writers do not interleave.
    with DONE.open("a") as done:
        done.write(f"{number} {time.time():.6f}\n")


def produce(count: int) -> None:
    started = time.time()
    for number in range(count):
        note.delay(number)
    print(f"sent {count} in {time.time() - started:.2f} s, from {started:.6f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["produce"]:
        produce(int(sys.argv[2]))
