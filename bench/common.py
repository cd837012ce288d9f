"""What both harnesses (bench.saga, bench.relay) share: where things are, logging, percentiles, the machine."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
RESULTS = ROOT / "bench" / "results"
PG = {"host": "127.0.0.1", "port": 5432, "user": "root"}
PG_URL = "postgres://root@127.0.0.1:5432"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672"
SERVICES = {"accounts": "default", "concerts": "concerts", "payments": "payments"}  # service -> database alias
CLK_TCK = os.sysconf("SC_CLK_TCK")
PACKAGES = ("Django", "djangorestframework", "celery", "kombu", "amqp", "gunicorn", "psycopg2-binary")


def logger(prefix: str) -> Any:
    def log(message: str) -> None:
        print(f"\r\033[K[{prefix}] {message}" if sys.stdout.isatty() else f"[{prefix}] {message}", flush=True)

    return log


def percentiles(values: Iterable[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50/p95/p99/max (linear interpolation), scaled (seconds to ms by default)."""
    data = sorted(values)
    if not data:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def at(p: float) -> float:
        k = (len(data) - 1) * p / 100
        lo = math.floor(k)
        hi = min(lo + 1, len(data) - 1)
        return round((data[lo] + (data[hi] - data[lo]) * (k - lo)) * scale, 2)

    return {"n": len(data), "p50": at(50), "p95": at(95), "p99": at(99), "max": round(data[-1] * scale, 2)}


def run_quiet(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def rabbitmqctl(*args: str) -> str:
    return run_quiet(["rabbitmqctl", "-q", *args], timeout=60)


def machine_info(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """The machine, the servers and the package versions a result was measured with."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    conn = psycopg2.connect(**PG, dbname="postgres")
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
    conn.close()
    try:
        rabbit = rabbitmqctl("version").strip()
    except (RuntimeError, OSError):
        rabbit = "unknown"
    versions: dict[str, str | None] = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "rabbitmq": rabbit,
        **versions,
        "loadavg_at_start": os.getloadavg(),
    }
