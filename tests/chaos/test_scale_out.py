"""Scaled out on one set of databases: two relay processes and two worker processes per service queue.

What docs/OPERATIONS.md describes for several machines, on one: under the chaos suite's booking load,
every saga settles and the audit finds every invariant kept (several relays racing for the same rows
is also test_chaos.py's test_three_relays_at_once, with three claim loops per database).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import saga

from .conftest import scaled, settle_and_audit

pytestmark = [saga]
QUEUES = ("accounts", "concerts", "payments")


def wait_ready(workers: Any, name: str, marker: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while marker not in workers.log(name):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{name} did not start:\n{workers.log(name)[-3000:]}")
        time.sleep(0.1)


@pytest.fixture
def second_of_each(workers: Any) -> Iterator[None]:
    """Besides the session's relay and workers: one more relay process and one more worker per queue."""
    extra = {"relay-2": [sys.executable, "manage.py", "relay"]}
    extra |= {f"{queue}-2": workers.command(queue) for queue in QUEUES}
    processes = {name: workers.spawn(name, argv) for name, argv in extra.items()}
    try:
        for name, process in processes.items():
            wait_ready(workers, name, "relaying" if name == "relay-2" else " ready.", process)
        yield
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=15)


def test_two_relays_and_two_workers_per_queue_keep_every_invariant(second_of_each: None, load: Any) -> None:
    # given two relay processes and two worker processes per queue on the same databases and broker
    # when bookings (some unpaid, so compensated) run through them
    with load(seconds=scaled(8, 90)) as bookings:
        bookings.thread.join()

    # then every saga settles and the audit of the three databases passes
    settle_and_audit("scaled out", bookings, "two relay processes, two workers per queue")
