"""The parts every mode of the harness shares: the world it builds, CPU accounting, progress, results."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg2

from ticketing.events.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
RESULTS = ROOT / "bench" / "results"
PG = {"host": "127.0.0.1", "port": 5432, "user": "root"}
PG_URL = "postgres://root@127.0.0.1:5432"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672"
# BENCH_STACK=default: measure on what `make run` starts with no configuration instead, its own
# PostgreSQL and Redis (ticketing.devservers), Redis as the broker. Start them around the run:
#   BENCH_STACK=default TICKETING_VAR_DIR=var/bench-default python -m ticketing.devservers python -m bench ...
DEFAULT_STACK = os.environ.get("BENCH_STACK") == "default"
if DEFAULT_STACK:
    from ticketing import devservers

    PG = {"host": devservers.HOST, "port": devservers.POSTGRES_PORT, "user": devservers.POSTGRES_USER}
    PG_URL = f"postgres://{devservers.POSTGRES_USER}@{devservers.HOST}:{devservers.POSTGRES_PORT}"
SERVICES = {service.name: service.database for service in CATALOGUE.services}  # service -> database alias
CLK_TCK = os.sysconf("SC_CLK_TCK")
PACKAGES = (
    *("Django", "djangorestframework", "celery", "kombu", "amqp", "gunicorn", "granian"),
    *("psycopg2-binary", "django-celery-outbox", "aiohttp"),
)
NOT_THE_SYSTEM = {"harness", "postgres (other)", "other processes"}
TTY = sys.stdout.isatty()


def log(message: str) -> None:
    print(f"\r\033[K[bench] {message}" if TTY else f"[bench] {message}", flush=True)


class Progress:
    """The live progress line: rewritten in place on a terminal, a line every 5 s otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = 0.0

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if TTY:
            print(f"\r\033[K[{self.label}] {text}", end="", flush=True)
        elif force or now - self.last >= 5:
            print(f"[{self.label}] {text}", flush=True)
            self.last = now

    def done(self) -> None:
        if TTY:
            print(flush=True)


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


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}


def run_quiet(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def rabbitmqctl(*args: str) -> str:
    return run_quiet(["rabbitmqctl", "-q", *args], timeout=60)


def machine_info() -> dict[str, Any]:
    """The machine, the servers and the package versions a result was measured with."""
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    installed = {dist.metadata["Name"].lower(): dist.version for dist in metadata.distributions()}
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": World.sql("postgres", "SHOW server_version")[0][0],
        "rabbitmq": None if DEFAULT_STACK else rabbitmqctl("version").strip(),
        "broker": "redis (make run's default)" if DEFAULT_STACK else "rabbitmq",
        **{pkg: installed.get(pkg.lower()) for pkg in PACKAGES},
        "loadavg_at_start": os.getloadavg(),
    }


def code_fingerprint() -> dict[str, Any]:
    """A hash of the code under test (without git), and its newest file, to tie a result to a code state."""
    digest = hashlib.sha256()
    newest = (0.0, "")
    files = sorted([*ROOT.glob("ticketing/**/*.py"), ROOT / "celery_app.py", ROOT / "requirements.txt"])
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
        newest = max(newest, (path.stat().st_mtime, str(path.relative_to(ROOT))))
    return {"sha256": digest.hexdigest()[:16], "files": len(files), "newest_file": newest[1]}


def new_result(kind: str, argv: Sequence[str], config: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": " ".join([".venv/bin/python -m bench", *argv]),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in config.items()},
        "machine": machine_info(),
        "code": code_fingerprint(),
        "kind": kind,
        "status": "FAILED",
    }


def write_result(result: dict[str, Any], out: Path | None) -> Path:
    if code_fingerprint()["sha256"] != result["code"]["sha256"]:
        result["code_changed_during_run"] = True
        log("WARNING: the code under test changed during the run")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = out or RESULTS / f"{result['started'][:19].replace(':', '')}-{result['kind']}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


@contextlib.contextmanager
def interruptible(result: dict[str, Any], world: World, keep: bool) -> Iterator[None]:
    """Ctrl-C or SIGTERM ends the run as INTERRUPTED, an error as FAILED; either way everything is cleaned up."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        yield
    except KeyboardInterrupt:
        result["status"] = "INTERRUPTED"
        log("interrupted")
    except Exception as exc:
        result["error"] = repr(exc)
        log(f"error: {exc}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        logs = world.tmp / "logs"
        if logs.exists():  # the processes' logs (WARNING and up, so small) are kept beside the result
            RESULTS.mkdir(parents=True, exist_ok=True)
            shutil.copytree(
                logs, RESULTS / f"{result['started'][:19].replace(':', '')}-{result['kind']}-logs", dirs_exist_ok=True
            )
        if keep:
            log(f"kept databases {', '.join(world.dbs.values())}, vhost {world.vhost}, files in {world.tmp}")
        else:
            try:
                world.destroy()
                log("dropped the databases and the vhost")
            except Exception as exc:
                log(f"cleanup failed: {exc!r}")
        signal.signal(signal.SIGINT, signal.default_int_handler)


# --- The world: databases, vhost, environment -------------------------------------------------------------------


class World:
    """Three fresh PostgreSQL databases and a RabbitMQ vhost of its own, migrated; dropped by destroy()."""

    def __init__(self, *, settings_module: str, extra_env: dict[str, str]) -> None:
        self.run = f"bench_{secrets.token_hex(4)}"
        self.dbs = {alias: f"{self.run}_{service}" for service, alias in SERVICES.items()}
        self.vhost = self.run
        self.broker_url = f"{AMQP_URL}/{self.vhost}"
        if DEFAULT_STACK:  # the whole Redis is the run's: the cache on database 0, the broker on 1
            self.broker_url = devservers.redis_url().removesuffix("/0") + "/1"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.run}_"))
        self.created: list[str] = []
        self.vhost_created = False
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"REDIS_URL", "CACHE_KEY_PREFIX", "TICKETING_TEST_RUN", "TICKETING_DEV"}
        }
        self.env |= {
            f"{service.upper()}_DATABASE_URL": f"{PG_URL}/{name}"
            for service, name in zip(SERVICES, self.dbs.values(), strict=True)
        }
        if DEFAULT_STACK:
            self.env["REDIS_URL"] = devservers.redis_url()
        self.env |= {
            "CELERY_BROKER_URL": self.broker_url,
            "DEBUG": "0",
            "SECRET_KEY": f"bench-only-{secrets.token_urlsafe(32)}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "BOOKING_RATE_PER_USER": "1000000/min",  # a load test, not a person
            "TICKETING_VAR_DIR": str(self.tmp / "var"),
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }

    def flush_redis(self) -> None:
        """A run on the default stack starts and ends with its Redis empty (no queue left from another run)."""
        import redis

        for url in (devservers.redis_url(), self.broker_url):
            redis.Redis.from_url(url).flushdb()

    @staticmethod
    def sql(dbname: str, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = psycopg2.connect(**PG, dbname=dbname)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def query(self, alias: str, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.sql(self.dbs[alias], statement, params)

    def create(self) -> None:
        for name in self.dbs.values():
            self.sql("postgres", f'CREATE DATABASE "{name}"')
            self.created.append(name)
        if DEFAULT_STACK:
            self.flush_redis()
        else:
            rabbitmqctl("add_vhost", self.vhost)
            self.vhost_created = True
            rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        migrate = [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0", "--database"]
        procs = [
            subprocess.Popen(
                [*migrate, alias], cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for alias in self.dbs
        ]
        for alias, proc in zip(self.dbs, procs, strict=True):
            output, _ = proc.communicate(timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"migrate --database {alias} failed:\n{output}")

    def destroy(self) -> None:
        for name in self.created:
            self.sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created = []
        if self.vhost_created:
            rabbitmqctl("delete_vhost", self.vhost)
            self.vhost_created = False
        if DEFAULT_STACK:
            self.flush_redis()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pg_stats(self) -> dict[str, dict[str, int]]:
        """Cumulative counters of the three databases (PostgreSQL flushes them within about a second)."""
        names = ["commits", "rollbacks", "inserted", "updated", "returned"]
        rows = self.sql(
            "postgres",
            "SELECT datname, xact_commit, xact_rollback, tup_inserted, tup_updated, tup_returned "
            "FROM pg_stat_database WHERE datname = ANY(%s)",
            [list(self.dbs.values())],
        )
        stats = {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}
        for alias, name in self.dbs.items():  # which table is read how: a scan shows as seq reads growing
            tables = "SELECT relname, seq_tup_read, coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
            for table, seq, fetched in self.query(alias, tables):
                stats.setdefault(name, {}).update({f"{table} seq read": seq, f"{table} index fetch": fetched})
        return {alias: stats.get(name, {}) for alias, name in self.dbs.items()}

    def outbox(self) -> dict[str, dict[str, int]]:
        """Outbox rows by state, and inbox rows, per database."""
        return {
            alias: dict(self.query(alias, "SELECT state, count(*) FROM outbox_outboxmessage GROUP BY state"))
            | {"inbox": self.query(alias, "SELECT count(*) FROM outbox_inboxmessage")[0][0]}
            for alias in self.dbs
        }

    def audit(self) -> dict[str, Any]:
        """``manage.py audit_sagas --idle``; retried briefly only while the outbox is all that fails."""
        argv = [PYTHON, "manage.py", "audit_sagas", "--idle"]
        for attempt in range(4):
            done = subprocess.run(
                argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300, check=False
            )
            violations = [line for line in done.stderr.splitlines() if line.startswith("A6.")]
            if done.returncode == 0 or attempt == 3 or any(not v.startswith("A6.7") for v in violations):
                return {"passed": done.returncode == 0, "output": (done.stdout + done.stderr).strip()[-4000:]}
            time.sleep(3)
        raise AssertionError("unreachable")


# --- CPU and memory from /proc -------------------------------------------------------------------------------------


def machine_ticks() -> list[int]:
    """user nice system idle iowait irq softirq steal, from /proc/stat."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


class CpuSampler(threading.Thread):
    """utime+stime of every process by group (the roots' trees, our databases' backends, RabbitMQ, the rest),
    4 times a second, keyed by (pid, start time): processes that come and go count (but their last 250 ms)."""

    def __init__(self, roots: dict[int, str], marker: str) -> None:
        super().__init__(daemon=True, name="cpu-sampler")
        self.roots = {os.getpid(): "harness", **roots}
        self.marker = marker  # in the command line of the benchmark databases' backends
        self.lock = threading.Lock()
        self.last: dict[tuple[int, int], list[Any]] = {}
        self.memo: dict[tuple[int, int], str] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            self.tick()

    def tick(self) -> None:
        procs: dict[int, tuple[int, str, int, int]] = {}  # pid -> parent, comm, start time, ticks
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                close = data.rfind(b")")
                rest = data[close + 2 :].split()
                comm = data[data.find(b"(") + 1 : close].decode(errors="replace")
                procs[int(entry)] = (int(rest[1]), comm, int(rest[19]), int(rest[11]) + int(rest[12]))
        with self.lock:
            for pid, (_, comm, start, ticks) in procs.items():
                self.last[(pid, start)] = [self.classify(pid, (pid, start), comm, procs), ticks]

    def classify(self, pid: int, key: tuple[int, int], comm: str, procs: dict[int, tuple[int, str, int, int]]) -> str:
        if key in self.memo:
            return self.memo[key]
        if comm == "postgres":
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    ours = self.marker in f.read().decode(errors="replace")
            except OSError:
                return "postgres (other)"
            if not ours:
                return "postgres (other)"  # not memoized: a backend names its database once authenticated
            self.memo[key] = "postgres (bench dbs)"
            return self.memo[key]
        group, current = "other processes", pid  # e.g. a test suite running at the same time
        for _ in range(32):
            if current in self.roots:
                group = self.roots[current]
                break
            info = procs.get(current)
            if info is None or current <= 1:
                break
            if info[1] == "beam.smp":
                group = "rabbitmq"
                break
            current = info[0]
        self.memo[key] = group
        return group

    def mark(self) -> tuple[dict[tuple[int, int], int], list[int], float]:
        self.tick()
        with self.lock:
            return {key: value[1] for key, value in self.last.items()}, machine_ticks(), time.monotonic()

    def since(self, mark: tuple[dict[tuple[int, int], int], list[int], float], per: int) -> dict[str, Any]:
        """CPU seconds per group since ``mark``, and ms per unit of work (``per`` sagas or rows)."""
        base, machine0, t0 = mark
        self.tick()
        with self.lock:
            groups: Counter[str] = Counter()
            for key, (group, ticks) in self.last.items():
                groups[group] += ticks - base.get(key, 0)
        deltas = [(b - a) / CLK_TCK for a, b in zip(machine0, machine_ticks(), strict=True)]
        busy = sum(deltas) - deltas[3] - deltas[4]  # all but idle and iowait
        seconds = {group: round(ticks / CLK_TCK, 2) for group, ticks in sorted(groups.items())}
        system = sum(s for group, s in seconds.items() if group not in NOT_THE_SYSTEM)
        n, window = max(per, 1), time.monotonic() - t0
        return {
            "window_s": round(window, 2),
            # Cores' worth of CPU that other processes (a test suite, say) took meanwhile: the noise.
            "other_processes_cores": round(seconds.get("other processes", 0) / window, 2),
            "groups_s": seconds,
            "machine_busy_s": round(busy, 2),
            "unattributed_s": round(busy - sum(seconds.values()), 2),  # interrupts, processes gone between samples
            "ms_per_unit": {group: round(1000 * s / n, 3) for group, s in seconds.items()},
            # The system under test: all but the harness, other databases' backends and bystanders.
            "system_ms_per_unit": round(1000 * system / n, 3),
        }

    def rss_mb(self) -> dict[str, float]:
        """The largest resident set of any one of the roots' processes in each group, now, in MiB."""
        page = os.sysconf("SC_PAGE_SIZE")
        with self.lock:
            keys = [(pid, group) for (pid, _), (group, _) in self.last.items() if group in self.roots.values()]
        largest: dict[str, float] = {}
        for pid, group in keys:
            try:
                with open(f"/proc/{pid}/statm") as f:
                    rss = int(f.read().split()[1]) * page / 2**20
            except OSError:
                continue  # gone
            largest[group] = round(max(largest.get(group, 0.0), rss), 1)
        return dict(sorted(largest.items()))


# --- Charts ----------------------------------------------------------------------------------------------------


def bar_chart(path: Path, panels: list[tuple[str, dict[str, dict[str, Any]]]], title: str) -> None:
    """One panel per (title, {bar label: {series: median/min/max}}): medians with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.4), squeeze=False)
    for ax, (panel_title, bars) in zip(axes[0], panels, strict=True):
        names = list(bars)
        series = list(dict.fromkeys(s for bar in bars.values() for s in bar))
        width = 0.8 / max(len(series), 1)
        for j, key in enumerate(series):
            stats = [bars[n].get(key) or {"median": 0, "min": 0, "max": 0} for n in names]
            medians = [st["median"] for st in stats]
            errors = [
                [m - st["min"] for m, st in zip(medians, stats, strict=True)],
                [st["max"] - m for m, st in zip(medians, stats, strict=True)],
            ]
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, medians, width, yerr=errors, capsize=4, label=key if len(series) > 1 else None)
            for x, m in zip(xs, medians, strict=True):
                ax.annotate(
                    f"{m:,.0f}", (x, m), ha="left", va="bottom", fontsize=8, xytext=(3, 2), textcoords="offset points"
                )
        tops = [st["median"] for bar in bars.values() for st in bar.values() if st and st["median"]]
        if tops and max(tops) / min(tops) > 20:
            ax.set_yscale("log")  # tens of milliseconds beside seconds
        if len(series) > 1:
            ax.legend()
        ax.set_title(panel_title, fontsize=10)
        ax.set_xticks(range(len(names)), [n.replace(": ", ":\n").replace(" (", "\n(") for n in names], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
