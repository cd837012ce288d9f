"""End-to-end benchmark of the booking saga: the real processes, the real broker, the real API.

    .venv/bin/python -m bench.saga --mode closed --concurrency 16 --duration 15
    .venv/bin/python -m bench.saga --mode open --rate 20 --duration 15 --repeat 3
    .venv/bin/python -m bench.saga --configs ours,delay,dco --repeat 3 --chart docs/saga-throughput.png

The harness builds a world of its own (three fresh PostgreSQL databases, a RabbitMQ vhost, users with
funded wallets, seats), starts gunicorn, one Celery worker per queue and celery beat on it the way the
Procfile does, books seats through ``POST /api/reservations/`` and watches the concerts database until
every saga is CONFIRMED or SYSTEM_CANCELED. It then runs ``manage.py audit_sagas --idle``: a run whose
audit fails is FAILED. ``--configs`` runs the same saga through other ways of publishing (``CONFIGS``),
each repeat going through every configuration in turn, on a fresh set of processes, so that their
ratios come from one run. Everything it started is stopped, and its databases and vhost are dropped,
unless ``--keep``. The result goes to ``bench/results/<timestamp>-saga.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import os
import queue
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
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from bench.common import (
    AMQP_URL,
    BIN,
    CLK_TCK,
    PACKAGES,
    PG,
    PG_URL,
    PYTHON,
    RESULTS,
    ROOT,
    SERVICES,
    logger,
    machine_info,
    percentiles,
    rabbitmqctl,
    run_quiet,
)

log = logger("bench")

QUEUE_CONCURRENCY = {"accounts": 1, "concerts": 2, "payments": 2}  # as in the Procfile
TERMINAL = ("CONFIRMED", "SYSTEM_CANCELED")
SEAT_PRICE = 1_000
TOP_UP = 100_000_000  # one top-up pays for 100,000 seats
NOT_THE_SYSTEM = {"harness", "postgres (other)", "other processes"}
PUBLISH_BACKEND = "OUTBOX_PUBLISH_BACKEND"


@dataclass(frozen=True)
class Config:
    title: str
    env: dict[str, str]
    relays: dict[str, dict[str, str]]  # process name -> its extra environment


MANAGE = [PYTHON, "manage.py"]
CONFIGS = {
    "ours": Config("ours: outbox + relay process", {}, {"relay": {}}),
    "delay": Config(
        ".delay() after commit (unsafe)", {PUBLISH_BACKEND: "bench.publishers.delay_after_commit"}, relays={}
    ),
    "dco": Config(
        "django-celery-outbox",
        {PUBLISH_BACKEND: "bench.publishers.django_celery_outbox"},
        {f"dco-relay-{alias}": {"BENCH_DCO_DATABASE": alias} for alias in ("concerts", "payments")},
    ),
}


# --- The world: databases, vhost, environment, data -----------------------------------------------------


class World:
    def __init__(self, run: str, *, extra_env: dict[str, str], settings_module: str) -> None:
        self.run = run
        self.dbs = {alias: f"bench_{run}_{service}" for service, alias in SERVICES.items()}
        self.vhost = f"bench_{run}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench_{run}_"))
        self.created_dbs: list[str] = []
        self.vhost_created = False
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CACHE_KEY_PREFIX", "TICKETING_TEST_RUN"}}
        env.update(
            {
                "ACCOUNTS_DATABASE_URL": f"{PG_URL}/{self.dbs['default']}",
                "CONCERTS_DATABASE_URL": f"{PG_URL}/{self.dbs['concerts']}",
                "PAYMENTS_DATABASE_URL": f"{PG_URL}/{self.dbs['payments']}",
                "CELERY_BROKER_URL": f"{AMQP_URL}/{self.vhost}",
                "DEBUG": "0",
                "SECRET_KEY": f"bench-only-{secrets.token_urlsafe(32)}",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "LOG_LEVEL": "WARNING",
                "BOOKING_RATE_PER_USER": "1000000/min",  # a load test, not a person
                "TICKETING_VAR_DIR": str(self.tmp / "var"),
                "DJANGO_SETTINGS_MODULE": settings_module,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env)
        self.env = env

    def dsn(self, alias: str) -> dict[str, Any]:
        return {**PG, "dbname": self.dbs[alias]}

    def create(self) -> None:
        conn = psycopg2.connect(**PG, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in self.dbs.values():
                cur.execute(f'CREATE DATABASE "{name}"')
                self.created_dbs.append(name)
        conn.close()
        rabbitmqctl("add_vhost", self.vhost)
        self.vhost_created = True
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        migrations = [
            subprocess.Popen(
                [PYTHON, "manage.py", "migrate", "--database", alias, "--noinput", "-v", "0"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for alias in self.dbs
        ]
        for alias, proc in zip(self.dbs, migrations, strict=True):
            output, _ = proc.communicate(timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"migrate --database {alias} failed:\n{output}")

    def destroy(self) -> None:
        if self.created_dbs:
            conn = psycopg2.connect(**PG, dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                for name in self.created_dbs:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.close()
            self.created_dbs = []
        if self.vhost_created:
            rabbitmqctl("delete_vhost", self.vhost)
            self.vhost_created = False

    def populate(
        self, *, users: int, fail_ratio: float, seats: int, label: str, token_minutes: int = 15
    ) -> dict[str, Any]:
        """Users (once), a performance with ``seats`` fresh seats, fresh tokens; in a Django subprocess."""
        out = self.tmp / f"setup-{label}.json"
        argv = [PYTHON, "-m", "bench.saga", "--internal-setup", str(out), "--users", str(users)]
        argv += ["--fail-ratio", str(fail_ratio), "--seats", str(seats), "--label", label]
        argv += ["--token-minutes", str(token_minutes)]
        run_quiet(argv, env=self.env, timeout=600)
        data: dict[str, Any] = json.loads(out.read_text())
        out.unlink()
        return data

    def audit(self) -> dict[str, Any]:
        """``manage.py audit_sagas --idle``; retried briefly only while the outbox is all that fails."""
        for attempt in range(4):
            done = subprocess.run(
                [PYTHON, "manage.py", "audit_sagas", "--idle"],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            output = (done.stdout + done.stderr).strip()
            violations = [line for line in done.stderr.splitlines() if line.startswith("A6.")]
            if done.returncode == 0 or attempt == 3 or any(not v.startswith("A6.7") for v in violations):
                return {"passed": done.returncode == 0, "output": output[-4000:]}
            time.sleep(3)
        raise AssertionError("unreachable")

    def pg_stats(self) -> dict[str, dict[str, int]]:
        """Cumulative counters of the three databases (PostgreSQL flushes them within about a second)."""
        conn = psycopg2.connect(**PG, dbname="postgres")
        with conn.cursor() as cur:
            cur.execute(
                "SELECT datname, sessions, xact_commit, xact_rollback, tup_inserted, tup_updated, tup_returned "
                "FROM pg_stat_database WHERE datname = ANY(%s)",
                (list(self.dbs.values()),),
            )
            names = ["sessions", "commits", "rollbacks", "inserted", "updated", "returned"]
            stats = {row[0]: dict(zip(names, row[1:], strict=True)) for row in cur.fetchall()}
        conn.close()
        return {alias: stats.get(name, {}) for alias, name in self.dbs.items()}

    def analyze(self) -> None:
        """Fresh tables have no statistics yet; a database that has run for a while has."""
        for alias in self.dbs:
            conn = psycopg2.connect(**self.dsn(alias))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("ANALYZE")
            conn.close()

    def table_rows(self) -> dict[str, dict[str, int]]:
        """Rows in each database's outbox and inbox (estimates would lag: counted)."""
        rows = {}
        for alias in self.dbs:
            conn = psycopg2.connect(**self.dsn(alias))
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT (SELECT count(*) FROM outbox_outboxmessage), (SELECT count(*) FROM outbox_inboxmessage)"
                )
                outbox, inbox = cur.fetchone()
                rows[alias] = {"outbox": outbox, "inbox": inbox}
            conn.close()
        return rows

    def outbox_counts(self) -> dict[str, dict[str, int]]:
        counts = {}
        for alias in self.dbs:
            conn = psycopg2.connect(**self.dsn(alias))
            with conn.cursor() as cur:
                cur.execute("SELECT state, count(*) FROM outbox_outboxmessage GROUP BY state")
                counts[alias] = dict(cur.fetchall())
            conn.close()
        return counts


def access_token(refresh: Any, *, minutes: int) -> Any:
    """An access token that outlives the run (a real client would refresh it every 15 minutes)."""
    token = refresh.access_token
    token.set_exp(lifetime=timedelta(minutes=minutes))
    return token


def internal_setup(args: argparse.Namespace) -> int:
    """The --internal-setup subprocess: runs with the world's environment, inside Django."""
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    from ticketing.accounts.models import User
    from ticketing.concerts.models import Concert, Performance, Seat
    from ticketing.payments.models import Wallet
    from ticketing.payments.services import wallet_open, wallet_top_up

    existing = User.objects.using("default").filter(username__startswith="bench-").count()
    if existing < args.users:
        User.objects.using("default").bulk_create(
            [User(username=f"bench-{i:05d}", password="!") for i in range(existing, args.users)]
        )
        for index, user in enumerate(
            User.objects.using("default").filter(username__startswith="bench-").order_by("id")
        ):
            if index < existing:
                continue
            # Spread the unfunded users evenly, so that failures are spread over the run.
            if int((index + 1) * args.fail_ratio) > int(index * args.fail_ratio):
                wallet_open(user_id=user.id)
            else:
                wallet_top_up(user_id=user.id, amount=TOP_UP)
    funded = set(Wallet.objects.using("payments").filter(balance__gt=0).values_list("user_id", flat=True))
    users = [
        [user.id, str(access_token(RefreshToken.for_user(user), minutes=args.token_minutes)), user.id in funded]
        for user in User.objects.using("default").filter(username__startswith="bench-").order_by("id")
    ]
    with transaction.atomic(using="concerts"):
        concert, _ = Concert.objects.using("concerts").get_or_create(title="bench", defaults={"artist": "bench"})
        performance = Performance.objects.using("concerts").create(
            concert=concert, venue=f"bench {args.label}", starts_at=timezone.now() + timedelta(days=30)
        )
        seat_ids: list[int] = []
        for start in range(0, args.seats, 5000):
            batch = [
                Seat(performance=performance, label=f"{i:07d}", grade="B", price=SEAT_PRICE)
                for i in range(start, min(args.seats, start + 5000))
            ]
            seat_ids.extend(seat.id for seat in Seat.objects.using("concerts").bulk_create(batch))
    Path(args.internal_setup).write_text(json.dumps({"users": users, "seats": seat_ids}))
    return 0


# --- The system under test -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class System:
    """gunicorn, a Celery worker per queue, the relay and beat, as in the Procfile, each in a session of its own."""

    def __init__(self, world: World, config: Config, *, web_workers: int, log_dir: Path) -> None:
        self.world = world
        self.env = {**world.env, **config.env}
        self.port = free_port()
        self.log_dir = log_dir
        celery = [str(BIN / "celery"), "-A", "celery_app"]
        quiet = ["--without-mingle", "--without-gossip", "-l", "WARNING"]
        web = [str(BIN / "gunicorn"), "ticketing.wsgi", "--bind", f"127.0.0.1:{self.port}"]
        self.commands: dict[str, list[str]] = {"web": [*web, "--workers", str(web_workers)]}
        for name, n in QUEUE_CONCURRENCY.items():
            worker = [*celery, "worker", "-Q", name, "-n", f"{name}@%h", "--concurrency", str(n)]
            self.commands[f"celery-{name}"] = [*worker, *quiet]
        schedule = str(world.tmp / "beat-schedule")
        self.commands["beat"] = [
            *celery,
            "beat",
            "-S",
            "celery.beat:PersistentScheduler",
            "-s",
            schedule,
            "-l",
            "WARNING",
        ]
        self.envs = dict.fromkeys(self.commands, self.env)
        for name, env in config.relays.items():
            self.commands[name] = [*MANAGE, "relay" if name == "relay" else "celery_outbox_relay"]
            self.envs[name] = {**self.env, **env}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for name, argv in self.commands.items():
            with (self.log_dir / f"{name}.log").open("ab") as out:
                self.procs[name] = subprocess.Popen(
                    argv, cwd=ROOT, env=self.envs[name], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )

    def pids(self) -> dict[int, str]:
        return {proc.pid: name for name, proc in self.procs.items()}

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}; its log ends:\n{tail}")

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        web = queues = False
        while time.monotonic() < deadline:
            self.check_alive()
            if not web:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                    conn.request("GET", "/api/concerts/")
                    web = conn.getresponse().status == 200
                    conn.close()
                except OSError:
                    pass
            if not queues:
                # Workers log nothing at WARNING when ready; a consumer on each queue is the sign.
                listing = rabbitmqctl("list_queues", "-p", self.world.vhost, "name", "consumers", "--no-table-headers")
                consumers = dict(line.split()[:2] for line in listing.splitlines() if line.strip())
                queues = all(int(consumers.get(name, 0)) >= 1 for name in QUEUE_CONCURRENCY)
            if web and queues:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the system was not ready after {timeout}s (web={web}, queues={queues})")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            # The group too: a worker's pool children may outlive their parent.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)


# --- CPU accounting from /proc ------------------------------------------------------------------------------


class CpuSampler(threading.Thread):
    """Samples utime+stime of every process by group, 4 times a second.

    A process is keyed by (pid, start time) and keeps its last sample after it exits, so backends and
    pool children that come and go during a window are counted (all but their last ≤250 ms).
    """

    def __init__(self, roots: dict[int, str], run: str) -> None:
        super().__init__(daemon=True, name="cpu-sampler")
        self.roots = roots
        self.marker = f"bench_{run}_"
        self.lock = threading.Lock()
        self.last: dict[tuple[int, int], list[Any]] = {}
        self.memo: dict[tuple[int, int], str | None] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            self.tick()

    def tick(self) -> None:
        procs: dict[int, tuple[int, str, int, int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
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
                key = (pid, start)
                group = self.classify(pid, key, comm, procs)
                if group is not None:
                    self.last[key] = [group, ticks]

    def classify(
        self, pid: int, key: tuple[int, int], comm: str, procs: dict[int, tuple[int, str, int, int]]
    ) -> str | None:
        if key in self.memo:
            return self.memo[key]
        if comm == "postgres":
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().decode(errors="replace")
            except OSError:
                return None
            if self.marker in cmdline:
                self.memo[key] = "postgres (bench dbs)"
                return "postgres (bench dbs)"
            return "postgres (other)"  # not memoized: a new backend names its database after it authenticated
        group = None
        current = pid
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
        self.memo[key] = group or "other processes"  # e.g. a test suite running at the same time
        return self.memo[key]

    def mark(self) -> tuple[dict[tuple[int, int], int], list[int], float]:
        self.tick()
        with self.lock:
            return {key: value[1] for key, value in self.last.items()}, machine_ticks(), time.monotonic()

    def since(self, mark: tuple[dict[tuple[int, int], int], list[int], float]) -> dict[str, Any]:
        base, machine0, t0 = mark
        self.tick()
        with self.lock:
            groups: Counter[str] = Counter()
            for key, (group, ticks) in self.last.items():
                groups[group] += ticks - base.get(key, 0)
        user, nice, system, idle, iowait, irq, softirq, steal = (
            (b - a) / CLK_TCK for a, b in zip(machine0, machine_ticks(), strict=True)
        )
        busy = user + nice + system + irq + softirq + steal
        seconds = {group: round(ticks / CLK_TCK, 2) for group, ticks in sorted(groups.items())}
        return {
            "window_s": round(time.monotonic() - t0, 2),
            "groups_s": seconds,
            "machine_busy_s": round(busy, 2),
            "machine_s": {
                "user": round(user + nice, 2),
                "system": round(system, 2),
                "irq+softirq": round(irq + softirq, 2),
                "steal": round(steal, 2),
                "idle+iowait": round(idle + iowait, 2),
            },
            # Interrupt time, and what processes that exited between two samples did.
            "unattributed_s": round(busy - sum(seconds.values()), 2),
        }

    def rss_mb(self) -> dict[str, float]:
        """The largest resident set of any one of our processes in each group, now, in MiB."""
        page = os.sysconf("SC_PAGE_SIZE")
        with self.lock:
            keys = [(pid, group) for (pid, _), (group, _) in self.last.items()]
        largest: dict[str, float] = {}
        for pid, group in keys:
            if group in NOT_THE_SYSTEM or group == "rabbitmq" or group.startswith("postgres"):
                continue  # the servers and the bystanders
            try:
                with open(f"/proc/{pid}/statm") as f:
                    rss = int(f.read().split()[1]) * page / 2**20
            except OSError:
                continue  # gone
            largest[group] = round(max(largest.get(group, 0.0), rss), 1)
        return dict(sorted(largest.items()))


def machine_ticks() -> list[int]:
    """user nice system idle iowait irq softirq steal, from /proc/stat."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


# --- Load and observation ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Booking:
    seat_id: int
    user: int
    t_sched: float
    t_send: float = 0.0
    t_done: float = 0.0
    code: int | str = 0
    res_id: int | None = None
    status: str = ""
    reason: str = ""
    db_latency: float | None = None  # updated_at - created_at of the reservation row
    t_seen: float = 0.0  # when the poller first saw it terminal
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Poller(threading.Thread):
    """Reads the concerts database every ``interval`` for the oldest pending reservations, in bulk."""

    BATCH = 1000

    def __init__(self, dsn: dict[str, Any], interval: float) -> None:
        super().__init__(daemon=True, name="settle-poller")
        self.dsn = dsn
        self.interval = interval
        self.incoming: deque[tuple[Booking, threading.Event | None]] = deque()
        self.pending: dict[int, Booking] = {}
        self.waiters: dict[int, threading.Event] = {}
        self.settled = 0
        self.max_pending = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def add(self, booking: Booking, waiter: threading.Event | None = None) -> None:
        self.incoming.append((booking, waiter))

    def outstanding(self) -> int:
        return len(self.pending) + len(self.incoming)

    def run(self) -> None:
        try:
            conn = psycopg2.connect(**self.dsn)
            conn.autocommit = True
            cur = conn.cursor()
            next_tick = time.monotonic()
            while not self.stopping.is_set():
                while self.incoming:
                    booking, waiter = self.incoming.popleft()
                    assert booking.res_id is not None
                    self.pending[booking.res_id] = booking
                    if waiter is not None:
                        self.waiters[booking.res_id] = waiter
                self.max_pending = max(self.max_pending, len(self.pending))
                if self.pending:
                    ids = list(self.pending) if len(self.pending) <= self.BATCH else sorted(self.pending)[: self.BATCH]
                    # The id range keeps PostgreSQL on the primary key; "status || ''" keeps it off the
                    # (status, created_at) index, through which it would read every terminal row.
                    cur.execute(
                        "SELECT id, status, reason, created_at, updated_at FROM concerts_reservation "
                        "WHERE id BETWEEN %s AND %s AND id = ANY(%s) AND status || '' = ANY(%s)",
                        (min(ids), max(ids), ids, list(TERMINAL)),
                    )
                    seen = time.monotonic()
                    for res_id, status, reason, created_at, updated_at in cur.fetchall():
                        booking = self.pending.pop(res_id)
                        booking.status, booking.reason, booking.t_seen = status, reason, seen
                        booking.created_at, booking.updated_at = created_at, updated_at
                        booking.db_latency = (updated_at - created_at).total_seconds()
                        self.settled += 1
                        waiter = self.waiters.pop(res_id, None)
                        if waiter is not None:
                            waiter.set()
                next_tick += self.interval
                delay = next_tick - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_tick = time.monotonic()
            conn.close()
        except BaseException as exc:
            self.error = exc
            raise


class Load:
    """Books one distinct seat per request over keep-alive ``http.client`` connections, one per thread.

    (gunicorn's sync workers answer ``Connection: close``, so http.client reconnects per request.)
    """

    def __init__(self, port: int, users: list[list[Any]], seats: list[int], poller: Poller) -> None:
        self.port = port
        self.headers = [
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Connection": "keep-alive"}
            for _, token, _ in users
        ]
        self.seats = iter(seats)
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.poller = poller
        self.bookings: list[Booking] = []
        self.out_of_seats = False
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def next_seat(self) -> tuple[int, int] | None:
        with self.lock:
            seat = next(self.seats, None)
            if seat is None:
                self.out_of_seats = True
                return None
            return next(self.counter), seat

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def book(self, conn: http.client.HTTPConnection, booking: Booking, waiter: threading.Event | None = None) -> None:
        body = b'{"seat_id": %d}' % booking.seat_id
        booking.t_send = time.monotonic()
        try:
            conn.request("POST", "/api/reservations/", body=body, headers=self.headers[booking.user])
            response = conn.getresponse()
            data = response.read()
            booking.code = response.status
            if response.status == 202:
                booking.res_id = int(json.loads(data)["id"])
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            booking.code = type(exc).__name__
            conn.close()
        booking.t_done = time.monotonic()
        if booking.res_id is not None:
            self.poller.add(booking, waiter)

    def start_closed(self, *, concurrency: int, duration: float, on_saga: bool, settle_timeout: float) -> None:
        end = time.monotonic() + duration

        def worker() -> None:
            conn = self.connection()
            while time.monotonic() < end and not self.stopping.is_set():
                nxt = self.next_seat()
                if nxt is None:
                    break
                index, seat = nxt
                booking = Booking(seat, index % len(self.headers), time.monotonic())
                self.bookings.append(booking)
                waiter = threading.Event() if on_saga else None
                self.book(conn, booking, waiter)
                if waiter is not None and booking.res_id is not None:
                    waiter.wait(settle_timeout)
            conn.close()

        self.threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
        for thread in self.threads:
            thread.start()

    def start_open(self, *, rate: float, duration: float, senders: int) -> None:
        jobs: queue.SimpleQueue[Booking | None] = queue.SimpleQueue()

        def dispatcher() -> None:
            t0 = time.monotonic()
            for i in itertools.count():
                due = t0 + i / rate
                if due >= t0 + duration or self.stopping.is_set():
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                nxt = self.next_seat()
                if nxt is None:
                    break
                booking = Booking(nxt[1], nxt[0] % len(self.headers), due)  # latency counts from the due time
                self.bookings.append(booking)
                jobs.put(booking)
            for _ in range(senders):
                jobs.put(None)

        def sender() -> None:
            conn = self.connection()
            while (booking := jobs.get()) is not None:
                self.book(conn, booking)
            conn.close()

        self.threads = [threading.Thread(target=dispatcher, daemon=True)]
        self.threads += [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
        for thread in self.threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)


class Progress:
    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stdout.isatty()
        self.last_line = 0.0

    def show(self, phase: str, t0: float, load: Load, poller: Poller) -> None:
        now = time.monotonic()
        bookings = list(load.bookings)
        done = [b for b in bookings if b.t_done]
        accepted = sum(1 for b in done if b.code == 202)
        elapsed = now - t0
        line = (
            f"[{self.label}] {phase:<8} {elapsed:6.1f}s  sent {len(bookings):>6}  202 {accepted:>6}  "
            f"other {len(done) - accepted:>4}  in flight {len(bookings) - len(done):>4}  "
            f"settled {poller.settled:>6} ({poller.settled / max(elapsed, 1e-9):6.1f}/s)  "
            f"pending {poller.outstanding():>5}"
        )
        if self.tty:
            print(f"\r\033[K{line}", end="", flush=True)
        elif now - self.last_line >= 5:
            print(line, flush=True)
            self.last_line = now

    def done(self) -> None:
        if self.tty:
            print(flush=True)


# --- One measurement ------------------------------------------------------------------------------------------


def measure(
    args: argparse.Namespace,
    *,
    label: str,
    world: World,
    system: System,
    sampler: CpuSampler | None,
    data: dict[str, Any],
    mode: str,
    duration: float,
) -> dict[str, Any]:
    poller = Poller(world.dsn("concerts"), args.poll_interval)
    poller.start()
    load = Load(system.port, data["users"], data["seats"], poller)
    progress = Progress(label)
    pg_before = world.pg_stats()
    mark = sampler.mark() if sampler else None
    outbox: dict[str, Any] = {}
    cpu = None
    t0 = time.monotonic()
    try:
        if mode == "open":
            load.start_open(rate=args.rate, duration=duration, senders=args.senders)
        else:
            load.start_closed(
                concurrency=args.concurrency,
                duration=duration,
                on_saga=args.closed_on == "saga",
                settle_timeout=args.settle_timeout,
            )
        while load.running():
            progress.show("booking", t0, load, poller)
            system.check_alive()
            time.sleep(0.25)
        t_load_end = time.monotonic()
        while poller.outstanding() and time.monotonic() - t_load_end < args.settle_timeout:
            if poller.error:
                raise RuntimeError(f"the poller failed: {poller.error!r}")
            progress.show("settling", t0, load, poller)
            system.check_alive()
            time.sleep(0.1)
        progress.show("settled" if not poller.outstanding() else "TIMEOUT", t0, load, poller)
        progress.done()
        drain_deadline = time.monotonic() + 60
        while time.monotonic() < drain_deadline:
            outbox = world.outbox_counts()
            if not any(counts.get("PENDING") for counts in outbox.values()):
                break
            time.sleep(0.2)
        cpu = sampler.since(mark) if sampler and mark else None
        time.sleep(1.5)  # let the backends flush their statistics
        pg_after = world.pg_stats()
    finally:
        load.stopping.set()
        poller.stopping.set()
        poller.join(timeout=5)
    result = summarize(load, poller, cpu=cpu, outbox=outbox, mode=mode, world=world)
    n = max(result["settled"], 1)
    result["postgres_per_saga"] = {
        alias: {k: round((pg_after[alias].get(k, 0) - v) / n, 2) for k, v in before.items()}
        for alias, before in pg_before.items()
    }
    return result


def summarize(
    load: Load, poller: Poller, *, cpu: dict[str, Any] | None, outbox: dict[str, Any], mode: str, world: World
) -> dict[str, Any]:
    bookings = [b for b in load.bookings if b.t_done]
    accepted = [b for b in bookings if b.code == 202]
    settled = [b for b in accepted if b.status]
    statuses = Counter(b.status for b in settled)
    reasons = Counter(b.reason for b in settled if b.status == "SYSTEM_CANCELED")
    first_send = min((b.t_send for b in bookings), default=0.0)
    last_done = max((b.t_done for b in bookings), default=0.0)
    last_seen = max((b.t_seen for b in settled), default=0.0)
    send_window = max(last_done - first_send, 1e-9)
    settle_window = max(last_seen - first_send, 1e-9)
    db_window = None
    if settled:
        last_update = max(b.updated_at for b in settled if b.updated_at)
        first_create = min(b.created_at for b in settled if b.created_at)
        db_window = (last_update - first_create).total_seconds()
    result: dict[str, Any] = {
        "sent": len(bookings),
        "accepted_202": len(accepted),
        "non_202": dict(Counter(str(b.code) for b in bookings if b.code != 202)),
        "out_of_seats": load.out_of_seats,
        "settled": len(settled),
        "unsettled": len(accepted) - len(settled),
        "confirmed": statuses.get("CONFIRMED", 0),
        "system_canceled": statuses.get("SYSTEM_CANCELED", 0),
        "cancel_reasons": dict(reasons),
        "send_window_s": round(send_window, 3),
        "accepted_per_s": round(len(accepted) / send_window, 1),
        "settle_window_s": round(settle_window, 3),
        "settled_per_s": round(len(settled) / settle_window, 1),
        "settled_per_s_db_clock": round(len(settled) / db_window, 1) if db_window else None,
        "max_pending_sagas": poller.max_pending,
        # Open loop: from the due time (no coordinated omission); closed loop: from the send.
        "request_latency_ms": percentiles(b.t_done - b.t_sched for b in bookings),
        "request_service_ms": percentiles(b.t_done - b.t_send for b in bookings),
        "client_send_lag_ms": percentiles(max(0.0, b.t_send - b.t_sched) for b in bookings) if mode == "open" else None,
        "terminal_latency_ms_db": percentiles(b.db_latency for b in settled if b.db_latency is not None),
        "terminal_latency_ms_observed": percentiles(b.t_seen - b.t_send for b in settled),
        "hops_ms": hop_breakdown(world, settled),
        "outbox": outbox,
    }
    if cpu:
        n = max(len(settled), 1)
        cpu["ms_per_saga"] = {group: round(1000 * s / n, 3) for group, s in cpu["groups_s"].items()}
        # The system under test: web, workers, beat, its databases' backends and RabbitMQ (shared by
        # every vhost, but idle otherwise); not the harness, nor whatever else ran meanwhile.
        system = sum(s for group, s in cpu["groups_s"].items() if group not in NOT_THE_SYSTEM)
        cpu["system_ms_per_saga"] = round(1000 * system / n, 3)
        result["cpu"] = cpu
    return result


def hop_breakdown(world: World, settled: list[Booking]) -> dict[str, Any]:
    """Where a saga's time goes, from the timestamps the services write (all on this machine's clock).

    Inbox ``received_at`` is PostgreSQL's transaction start of the consumer; the rest are Django's.
    """
    if not settled:
        return {}
    wanted = {str(b.res_id): b for b in settled}

    def by_saga(alias: str, table: str, columns: str, event: str) -> dict[str, tuple[Any, ...]]:
        """``columns`` of the rows of ``event`` (a LIKE pattern) in an outbox or inbox, by saga."""
        conn = psycopg2.connect(**world.dsn(alias))
        with conn.cursor() as cur:
            cur.execute(f"SELECT correlation_id, {columns} FROM outbox_{table} WHERE event LIKE %s", (event,))
            found = {row[0]: row[1:] for row in cur.fetchall() if row[0] in wanted}
        conn.close()
        return found

    reserve_out = by_saga("concerts", "outboxmessage", "created_at, sent_at", "concert-reserve")
    pay_in = {key: row[0] for key, row in by_saga("payments", "inboxmessage", "received_at", "concert-reserve").items()}
    pay_out = by_saga("payments", "outboxmessage", "created_at, sent_at", "payment-%")
    conc_in = {key: row[0] for key, row in by_saga("concerts", "inboxmessage", "received_at", "payment-%").items()}
    stages: dict[str, list[float]] = {
        "1 booking row -> payments consumer starts": [],
        "2 payments consumer (charge + outbox row)": [],
        "3 payment event row -> concerts consumer starts": [],
        "4 concerts consumer (confirm/compensate)": [],
        "relay concerts: row created -> marked sent": [],
        "relay payments: row created -> marked sent": [],
    }
    for key, b in wanted.items():
        if key not in pay_in or key not in pay_out or key not in conc_in or key not in reserve_out:
            continue
        assert b.created_at is not None and b.updated_at is not None
        values = {
            "1 booking row -> payments consumer starts": pay_in[key] - b.created_at,
            "2 payments consumer (charge + outbox row)": pay_out[key][0] - pay_in[key],
            "3 payment event row -> concerts consumer starts": conc_in[key] - pay_out[key][0],
            "4 concerts consumer (confirm/compensate)": b.updated_at - conc_in[key],
        }
        if reserve_out[key][1]:
            values["relay concerts: row created -> marked sent"] = reserve_out[key][1] - reserve_out[key][0]
        if pay_out[key][1]:
            values["relay payments: row created -> marked sent"] = pay_out[key][1] - pay_out[key][0]
        for name, value in values.items():
            stages[name].append(value.total_seconds())
    return {name: percentiles(values) for name, values in stages.items()}


# --- Reporting ----------------------------------------------------------------------------------------------------


def code_fingerprint() -> dict[str, Any]:
    """A hash of the code under test (without git), and its newest file, to tie a result to a code state."""
    import hashlib

    digest = hashlib.sha256()
    newest = (0.0, "")
    files = sorted([*ROOT.glob("ticketing/**/*.py"), ROOT / "celery_app.py", ROOT / "requirements.txt"])
    for path in files:
        if not path.is_file():
            continue
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
        newest = max(newest, (path.stat().st_mtime, str(path.relative_to(ROOT))))
    return {
        "sha256": digest.hexdigest()[:16],
        "files": len(files),
        "newest_file": newest[1],
        "newest_mtime": datetime.fromtimestamp(newest[0]).astimezone().isoformat(timespec="seconds"),
    }


def log_problems(log_dir: Path) -> dict[str, Any]:
    """WARNING and worse lines the processes logged, counted per process, with a few examples."""
    found: dict[str, Any] = {}
    for path in sorted(log_dir.glob("**/*.log")):
        lines = [
            line
            for line in path.read_text(errors="replace").splitlines()
            if any(level in line for level in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback"))
        ]
        if lines:
            found[str(path.relative_to(log_dir).with_suffix(""))] = {"count": len(lines), "first": lines[:5]}
    return found


SUMMARY_KEYS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "settled_per_s": lambda r: r["settled_per_s"],
    "accepted_per_s": lambda r: r["accepted_per_s"],
    "request_p50_ms": lambda r: r["request_latency_ms"]["p50"],
    "request_p99_ms": lambda r: r["request_latency_ms"]["p99"],
    "terminal_p50_ms": lambda r: r["terminal_latency_ms_db"]["p50"],
    "terminal_p95_ms": lambda r: r["terminal_latency_ms_db"]["p95"],
    "terminal_p99_ms": lambda r: r["terminal_latency_ms_db"]["p99"],
    "terminal_max_ms": lambda r: r["terminal_latency_ms_db"]["max"],
    "observed_terminal_p99_ms": lambda r: r["terminal_latency_ms_observed"]["p99"],
    "system_cpu_ms_per_saga": lambda r: r.get("cpu", {}).get("system_ms_per_saga"),
    "largest_rss_mib": lambda r: max(r["rss_mb_max"].values()) if r.get("rss_mb_max") else None,
    # Cores' worth of CPU that other processes (a test suite, say) took during the window: the noise.
    "other_processes_cores": lambda r: (
        round(r["cpu"]["groups_s"].get("other processes", 0) / r["cpu"]["window_s"], 2) if "cpu" in r else None
    ),
}


def summarize_reps(reps: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {}
    for name, get in SUMMARY_KEYS.items():
        values = [v for v in (get(r) for r in reps) if v is not None]
        if values:
            summary[name] = {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}
    return summary


def print_rep(label: str, r: dict[str, Any]) -> None:
    def p(d: dict[str, Any]) -> str:
        return f"p50 {d['p50']}  p95 {d['p95']}  p99 {d['p99']}  max {d['max']} ms" if d["n"] else "n/a"

    print(f"--- {label}")
    print(
        f"  bookings sent {r['sent']}, 202 {r['accepted_202']}, other {r['non_202'] or 0}"
        f"{' (ran out of seats)' if r['out_of_seats'] else ''}"
    )
    print(
        f"  settled {r['settled']} (CONFIRMED {r['confirmed']}, SYSTEM_CANCELED {r['system_canceled']}"
        f"{' ' + str(r['cancel_reasons']) if r['cancel_reasons'] else ''}), unsettled {r['unsettled']}"
    )
    print(
        f"  accepted {r['accepted_per_s']}/s over {r['send_window_s']} s; settled {r['settled_per_s']}/s over "
        f"{r['settle_window_s']} s (first booking -> last settle); max pending sagas {r['max_pending_sagas']}"
    )
    print(f"  request latency       {p(r['request_latency_ms'])}")
    print(f"  booking->terminal db  {p(r['terminal_latency_ms_db'])}   (updated_at - created_at)")
    print(f"  booking->terminal obs {p(r['terminal_latency_ms_observed'])}   (send -> seen by the 20 ms poller)")
    for stage, d in r["hops_ms"].items():
        print(f"    {stage:<48} {p(d)}")
    if "cpu" in r:
        cpu = r["cpu"]
        print(
            f"  CPU over {cpu['window_s']} s: machine busy {cpu['machine_busy_s']} s {cpu['machine_s']}, "
            f"in no process {cpu['unattributed_s']} s"
        )
        for group, seconds in cpu["groups_s"].items():
            print(f"    {group:<22} {seconds:8.2f} s   {cpu['ms_per_saga'][group]:7.3f} ms/saga")
        excluded = ", ".join(sorted(NOT_THE_SYSTEM))
        print(f"    the system (all but {excluded}): {cpu['system_ms_per_saga']:.3f} ms/saga")
    for alias, stats in r.get("postgres_per_saga", {}).items():
        print(f"    postgres {alias:<9} per saga: {stats}")
    if r.get("table_rows_after"):
        print(f"  outbox and inbox rows at the end: {r['table_rows_after']}")
    if r.get("rss_mb_max"):
        print(
            f"  largest resident set per process group (MiB): {r['rss_mb_max']} (at the start: {r['rss_mb_at_start']})"
        )
    audit = r.get("audit", {})
    print(f"  audit: {'passed' if audit.get('passed') else 'FAILED'}: {audit.get('output', '')[-500:]}")


# --- Main -----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.saga", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["open", "closed"], default="closed")
    parser.add_argument("--rate", type=float, default=20.0, help="open loop: bookings per second")
    parser.add_argument("--concurrency", type=int, default=16, help="closed loop: clients")
    parser.add_argument(
        "--closed-on",
        choices=["request", "saga"],
        default="request",
        help="closed loop: a client books again when its 202 came (request) or when its saga settled (saga)",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of booking per measurement")
    parser.add_argument("--repeat", type=int, default=1, help="measurements, each on fresh seats")
    parser.add_argument(
        "--configs",
        default="ours",
        help=f"comma-separated ways of publishing to compare, from {', '.join(CONFIGS)}: "
        + "; ".join(f"{name} = {config.title}" for name, config in CONFIGS.items()),
    )
    parser.add_argument("--chart", type=Path, help="also draw the configurations side by side into this PNG")
    parser.add_argument("--chart-from", type=Path, help="only draw --chart from this earlier result file")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--fail-ratio", type=float, default=0.0, help="share of users left unfunded (payment-fail)")
    parser.add_argument("--seats", type=int, default=0, help="seats per measurement (default: enough)")
    parser.add_argument("--warmup", type=int, default=40, help="sagas run (and not counted) before measuring")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--senders", type=int, default=64, help="open loop: sending threads")
    parser.add_argument("--poll-interval", type=float, default=0.02)
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra setting for every process"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases, vhost and logs")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/<timestamp>-saga.json)")
    parser.add_argument("--internal-setup", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    parser.add_argument("--token-minutes", type=int, default=15, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 <= args.fail_ratio <= 1:
        parser.error("--fail-ratio is a share from 0 to 1")
    args.configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in args.configs if name not in CONFIGS]
    if unknown or not args.configs:
        parser.error(f"--configs: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CONFIGS)}")
    if not args.seats:
        per_second = args.rate * 1.1 if args.mode == "open" else 700
        args.seats = int(per_second * args.duration) + 100
    return args


def run_config(args: argparse.Namespace, world: World, name: str, rep: int, log_dir: Path) -> dict[str, Any]:
    """One measurement of one configuration, on processes started for it and stopped after it."""
    label = f"{name} rep {rep}/{args.repeat}"
    warm = world.populate(users=args.users, fail_ratio=args.fail_ratio, seats=args.warmup, label=f"warm-{name}-{rep}")
    minutes = max(15, math.ceil((args.duration + args.settle_timeout) / 60) + 5)
    data = world.populate(
        users=args.users, fail_ratio=args.fail_ratio, seats=args.seats, label=f"{name}-{rep}", token_minutes=minutes
    )
    world.analyze()
    system = System(world, CONFIGS[name], web_workers=args.web_workers, log_dir=log_dir / f"{name}-{rep}")
    system.log_dir.mkdir(parents=True)
    sampler: CpuSampler | None = None
    try:
        system.start()
        log(f"{label}: started {', '.join(f'{n} ({p.pid})' for n, p in system.procs.items())}; waiting until ready")
        system.wait_ready()
        sampler = CpuSampler({**system.pids(), os.getpid(): "harness"}, world.run)
        sampler.start()
        if args.warmup:
            warm_args = argparse.Namespace(**{**vars(args), "concurrency": 4, "closed_on": "request"})
            warmup = measure(
                warm_args, label=f"{name} warm-up", world=world, system=system, sampler=None, data=warm, mode="closed",
                duration=60,
            )  # fmt: skip
            if warmup["unsettled"] or warmup["accepted_202"] != args.warmup:
                raise RuntimeError(f"the warm-up did not go through: {json.dumps(warmup, default=str)[:2000]}")
        log(f"{label}: {args.mode} loop, {len(data['seats'])} fresh seats")
        rss_at_start = sampler.rss_mb()
        result = measure(
            args, label=label, world=world, system=system, sampler=sampler, data=data, mode=args.mode,
            duration=args.duration,
        )  # fmt: skip
        result["rss_mb_at_start"] = rss_at_start
        result["rss_mb_max"] = sampler.rss_mb()
        result["table_rows_after"] = world.table_rows()
    finally:
        if sampler:
            sampler.stopping.set()
        system.stop()
    result["config"] = name
    result["audit"] = world.audit()
    return result


def compare(result: dict[str, Any]) -> dict[str, Any]:
    """Each configuration's medians, and each as a ratio to ours (when ours ran)."""
    by_config: dict[str, Any] = {}
    for name in result["config"]["configs"]:
        reps = [r for r in result["reps"] if r["config"] == name]
        if reps:
            by_config[name] = {"title": CONFIGS[name].title, "summary": summarize_reps(reps)}
    ours = by_config.get("ours", {}).get("summary", {})
    for entry in by_config.values():
        entry["ratio_to_ours"] = {
            key: round(stats["median"] / ours[key]["median"], 2)
            for key, stats in entry["summary"].items()
            if ours.get(key, {}).get("median")
        }
    return by_config


def print_comparison(by_config: dict[str, Any]) -> None:
    keys = ["settled_per_s", "terminal_p50_ms", "terminal_p99_ms", "request_p99_ms", "system_cpu_ms_per_saga"]
    print("--- configurations side by side: median [min - max] (ratio to ours)")
    for entry in by_config.values():
        print(f"  {entry['title']}")
        for key in keys:
            if key in entry["summary"]:
                st = entry["summary"][key]
                ratio = entry["ratio_to_ours"].get(key)
                versus = f"  ({ratio}x)" if ratio is not None else ""
                print(f"    {key:<24} {st['median']:>9}  [{st['min']} - {st['max']}]{versus}")


def draw_chart(result: dict[str, Any], path: Path) -> None:
    """Throughput and booking->terminal latency per configuration: medians, with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_config = result["by_config"]
    names = list(by_config)
    titles = [by_config[n]["title"].replace(": ", ":\n").replace(" (", "\n(") for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))

    def bars(ax: Any, key: str, offset: float, width: float, label: str | None) -> None:
        stats = [by_config[n]["summary"].get(key, {"median": 0, "min": 0, "max": 0}) for n in names]
        medians = [st["median"] for st in stats]
        spread = [[m - st["min"] for m, st in zip(medians, stats, strict=True)]]
        spread.append([st["max"] - m for m, st in zip(medians, stats, strict=True)])
        xs = [i + offset for i in range(len(names))]
        ax.bar(xs, medians, width, yerr=spread, capsize=4, label=label)
        for x, m in zip(xs, medians, strict=True):
            ax.annotate(
                f"{m:,.0f}", (x, m), ha="left", va="bottom", fontsize=8, xytext=(3, 2), textcoords="offset points"
            )

    bars(left, "settled_per_s", 0, 0.6, None)
    config = result["config"]
    loop = f"open loop at {config['rate']:g}/s" if config["mode"] == "open" else "closed loop, saturation"
    left.set_title(f"sagas settled per second ({loop})")
    bars(right, "terminal_p50_ms", -0.2, 0.4, "p50")
    bars(right, "terminal_p99_ms", 0.2, 0.4, "p99")
    right.set_title("booking -> CONFIRMED/SYSTEM_CANCELED (ms)")
    p99s = [by_config[n]["summary"].get("terminal_p99_ms", {}).get("median") or 1 for n in names]
    if max(p99s) / min(p99s) > 20:
        right.set_yscale("log")  # tens of milliseconds beside seconds
    right.legend()
    for ax in (left, right):
        ax.set_xticks(range(len(names)), titles, fontsize=8)
    machine = result["machine"]
    fig.suptitle(
        f"bench.saga, {result['started'][:10]}: {machine['nproc']} cores, PostgreSQL {machine['postgresql']}, "
        f"RabbitMQ {machine['rabbitmq']}; median of {result['config']['repeat']} runs, whiskers min-max",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.internal_setup:
        return internal_setup(args)
    if args.chart_from:
        draw_chart(json.loads(args.chart_from.read_text()), args.chart or Path("saga.png"))
        return 0

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    run = secrets.token_hex(4)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    extra_env = dict(item.split("=", 1) for item in args.env)
    settings_module = "bench.saga_settings" if "dco" in args.configs else "ticketing.settings"
    world = World(run, extra_env=extra_env, settings_module=settings_module)
    log_dir = world.tmp / "logs"
    log_dir.mkdir()
    result: dict[str, Any] = {
        "command": " ".join([".venv/bin/python -m bench.saga", *(argv if argv is not None else sys.argv[1:])]),
        "run": run,
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in {"internal_setup", "label"}
        },
        "machine": machine_info([*PACKAGES, "django-celery-outbox"]),
        "code": code_fingerprint(),
        "reps": [],
        "status": "FAILED",
    }
    try:
        log(f"run {run}: creating databases {', '.join(world.dbs.values())} and vhost {world.vhost}, migrating")
        world.create()
        for rep in range(1, args.repeat + 1):
            # Every configuration once per repeat, in turn: drifting background load hits them alike.
            for name in args.configs:
                rep_result = run_config(args, world, name, rep, log_dir)
                result["reps"].append(rep_result)
                print_rep(f"{CONFIGS[name].title}, rep {rep}/{args.repeat}", rep_result)
        # Every booking must have been accepted and settled, and the audit must hold.
        passed = all(r["audit"]["passed"] and not r["unsettled"] and not r["non_202"] for r in result["reps"])
        result["status"] = "PASSED" if passed else "FAILED"
    except KeyboardInterrupt:
        result["status"] = "INTERRUPTED"
        log("interrupted")
    except Exception as exc:
        result["error"] = repr(exc)
        log(f"error: {exc}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        result["log_problems"] = log_problems(log_dir)
        for name, found in result["log_problems"].items():
            log(f"{name} logged {found['count']} warnings/errors, e.g. {found['first'][0][:200]}")
        # The processes' logs (WARNING and up, so small) are kept beside the result.
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copytree(log_dir, RESULTS / f"{stamp}-saga-logs", dirs_exist_ok=True)
        if args.keep:
            log(f"kept databases {', '.join(world.dbs.values())}, vhost {world.vhost}, files in {world.tmp}")
        else:
            try:
                world.destroy()
                log("dropped the databases and the vhost")
            except Exception as exc:
                log(f"cleanup failed: {exc!r}")
            shutil.rmtree(world.tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if result["reps"]:
        result["by_config"] = compare(result)
    code_after = code_fingerprint()
    if code_after["sha256"] != result["code"]["sha256"]:
        result["code_changed_during_run"] = code_after
        log(f"WARNING: the code under test changed during the run (newest: {code_after['newest_file']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"{stamp}-saga.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    if result["reps"]:
        print_comparison(result["by_config"])
        if args.chart:
            draw_chart(result, args.chart)
            log(f"drew {args.chart}")
    print(f"{result['status']}: wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if result["status"] == "PASSED" else 1


if __name__ == "__main__":
    sys.exit(main())
