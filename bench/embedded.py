"""Throughput of the embedded broker: a producer process sends Celery tasks, two worker processes run them.

    python -m bench.embedded [--tasks 1000] [--stock]

Counts what ran: tasks per second from the first send to the last task done, tasks lost, tasks run
twice, and whether a worker died. ``--stock`` runs kombu's own filesystem transport instead, to see
the difference. Figures in docs/ARCHITECTURE.md ("Embedded transport").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

OURS = "ticketing.embedded_broker:Transport"
STOCK = "kombu.transport.filesystem:Transport"
WORKERS = 2


def worker(n: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "celery", "-A", "bench.embedded_app", "worker", "-Q", "bench", "-n", f"w{n}@%h"]
    argv += ["--concurrency", "1", "--without-mingle", "--without-gossip", "-l", "INFO"]
    return subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(logs: list[Path], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start")
        time.sleep(0.1)


def run(tasks: int, transport: str) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    for folder in ("queue", "control", "processed"):
        (root / folder).mkdir()
    done = root / "done.txt"
    env = {**os.environ, "BENCH_BROKER_DIR": str(root), "BENCH_TRANSPORT": transport, "BENCH_DONE": str(done)}
    logs = [root / f"worker-{n}.log" for n in range(WORKERS)]
    workers = [worker(n, env, log) for n, log in enumerate(logs)]
    try:
        wait_ready(logs)
        producer = subprocess.run(
            [sys.executable, "-m", "bench.embedded_app", "produce", str(tasks)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        started = float(producer.stdout.rsplit(" ", 1)[1])
        deadline, last_count = time.monotonic() + 60, -1
        while time.monotonic() < deadline and any(w.poll() is None for w in workers):
            lines = done.read_text().splitlines() if done.exists() else []
            if len(lines) >= tasks:
                break
            if len(lines) != last_count:  # progress: wait a further minute from here
                deadline, last_count = time.monotonic() + 60, len(lines)
            time.sleep(0.2)
        time.sleep(1)  # duplicates, if any, arrive late
        lines = done.read_text().splitlines() if done.exists() else []
        runs = Counter(int(line.split()[0]) for line in lines)
        finished = max((float(line.split()[1]) for line in lines), default=started)
        return {
            "transport": transport,
            "tasks": tasks,
            "ran": len(runs),
            "lost": tasks - len(runs),
            "run twice or more": sum(1 for count in runs.values() if count > 1),
            "tasks/s": round(len(runs) / (finished - started), 1) if lines else 0.0,
            "workers dead": sum(1 for w in workers if w.poll() is not None),
            "fatal errors": sum(len(re.findall(r"CRITICAL|Unrecoverable", log.read_text())) for log in logs),
        }
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=15)
            except subprocess.TimeoutExpired:
                w.kill()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stock", action="store_true", help="kombu's own filesystem transport")
    args = parser.parse_args()
    for _ in range(args.repeat):
        print(run(args.tasks, STOCK if args.stock else OURS), flush=True)


if __name__ == "__main__":
    main()
