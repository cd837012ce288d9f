"""Time from `make run` on a fresh clone to the shop's first page, and again on the second start.

    python -m bench.firstpage [--port 8765] [--keep]

Clones this repository's HEAD into a temporary folder, runs `make run` there with no configuration
(no *_DATABASE_URL, REDIS_URL or CELERY_BROKER_URL: its own PostgreSQL and Redis, on ports of this
run's own) and times until ``GET /`` answers 200: the first time creates the virtualenv, installs the
requirements (from pip's cache or the network), initialises PostgreSQL and migrates; the second finds
all of that. After each start it presses Ctrl-C (SIGINT to the process group, as a terminal does),
times the stop and checks that no process of the clone is left running. The result is printed and
written to bench/results/<time>-firstpage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, answers, free_port, machine_info

UNSET = ("ACCOUNTS_DATABASE_URL", "CONCERTS_DATABASE_URL", "PAYMENTS_DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def left_running(clone: Path) -> list[str]:
    """Command lines of processes still running from the clone (its servers included)."""
    found = subprocess.run(["pgrep", "-af", str(clone)], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def start_and_stop(clone: Path, env: dict[str, str], port: int, log: Path, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    with log.open("ab") as out:
        argv = ["make", "run", f"PORT={port}"]
        process = subprocess.Popen(argv, cwd=clone, env=env, stdout=out, stderr=out, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    while not answers(url):
        if process.poll() is not None or time.monotonic() - started > timeout:
            os.killpg(process.pid, signal.SIGKILL)
            raise RuntimeError(f"make run did not serve {url} (see {log})")
        time.sleep(0.2)
    first_page = time.monotonic() - started
    stopping = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
    process.wait(timeout=120)
    stopped = time.monotonic() - stopping
    time.sleep(1)
    return {"first_page_seconds": round(first_page, 1), "stop_seconds": round(stopped, 1), "left": left_running(clone)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.firstpage", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the first page")
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    args = parser.parse_args()

    clone = Path(tempfile.mkdtemp(prefix="ticketing-clone-")) / "ticketing"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("VIRTUAL_ENV")}
    env |= {"EMBEDDED_POSTGRES_PORT": str(free_port()), "EMBEDDED_REDIS_PORT": str(free_port())}
    port = args.port or free_port()
    log = clone.parent / "make-run.log"
    result: dict[str, Any] = {"kind": "firstpage", "started": datetime.now(UTC).isoformat(), "machine": machine_info()}
    result["fresh_clone"] = start_and_stop(clone, env, port, log, args.timeout)
    result["second_start"] = start_and_stop(clone, env, port, log, args.timeout)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{result['started'][:19].replace(':', '')}-firstpage.json").write_text(json.dumps(result, indent=2))
    if args.keep:
        print(f"kept {clone} (log {log})")
    else:
        subprocess.run(["rm", "-rf", str(clone.parent)], check=False)


if __name__ == "__main__":
    main()
