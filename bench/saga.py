"""The benchmark harness: the booking saga end to end, through the HTTP API, on the real processes.

Fresh databases and vhost, users with funded wallets, fresh seats per measurement; the web server, a
Celery worker per queue, beat and the configuration's relays as in the Procfile; one seat per booking;
a poller of the concerts database until every saga settled; then the audit. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2

from bench.common import (
    BIN,
    DEFAULT_STACK,
    PG,
    PYTHON,
    ROOT,
    CpuSampler,
    Progress,
    World,
    bar_chart,
    free_port,
    interruptible,
    log,
    new_result,
    percentiles,
    rabbitmqctl,
    run_quiet,
    spread,
    write_result,
)

QUEUE_CONCURRENCY = {"accounts": 1, "concerts": 2, "payments": 2}  # as in the Procfile
TERMINAL = ("CONFIRMED", "SYSTEM_CANCELED")
TOP_UP = 100_000_000  # one top-up pays for 10,000 seats
SEATS_PER_USER = 4  # MAX_SEATS_PER_USER's default: the harness gives no user more seats of one performance
BACKEND = "OUTBOX_PUBLISH_BACKEND"


@dataclass(frozen=True)
class Config:
    title: str
    env: dict[str, str]
    relays: dict[str, dict[str, str]]  # process name -> its extra environment
    worker_app: str = "celery_app"  # the peers run their own consumers (bench/peers.py)
    worker_options: tuple[str, ...] = ()


# The peers' workers as Celery ships: the prefork pool, four messages prefetched per process (bench/peers.py).
PEER_WORKERS = ("--pool", "prefork", "--prefetch-multiplier", "4")
PEERS: dict[str, Any] = {"worker_app": "bench.peers", "worker_options": PEER_WORKERS}
CONFIGS = {
    "ours": Config("ours: outbox + relay process", {}, {"relay": {}}),
    "delay": Config(".delay() after commit (unsafe)", {BACKEND: "bench.publishers.delay_after_commit"}, {}, **PEERS),
    "dco": Config(
        "django-celery-outbox",
        {BACKEND: "bench.publishers.django_celery_outbox"},
        {f"dco-relay-{alias}": {"BENCH_DCO_DATABASE": alias} for alias in ("concerts", "payments")},
        **PEERS,
    ),
}


FRONT_APP = "ticketing.front.asgi:application"


def web_command(server: str, port: int, workers: int) -> list[str]:
    """The web server: the front as in the Procfile, or Django alone on another server to compare."""
    gunicorn = [str(BIN / "gunicorn"), "ticketing.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    granian = [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port)]
    front = [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
    return {
        # as in the Procfile (its backlog a little larger: every client of a rush connects at once)
        "front": [*front, "--workers", str(workers), "--backlog", "4096", "--no-access-log", FRONT_APP],
        "gunicorn": gunicorn,
        "gthread": [*gunicorn, "--worker-class", "gthread", "--threads", "4"],
        "granian": [
            *granian,
            "--workers",
            str(workers),
            "--blocking-threads",
            "1",
            "--no-access-log",
            "ticketing.wsgi:application",
        ],
    }[server]


def worker_pools(spec: str) -> dict[str, tuple[str, int]]:
    """``--pool``: 'concerts=threads:4,payments=solo' -> each queue's pool and concurrency (solo runs one)."""
    pools: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        queue, _, rest = item.partition("=")
        pool, _, count = rest.partition(":")
        if queue not in QUEUE_CONCURRENCY or pool not in ("prefork", "threads", "solo"):
            raise SystemExit(
                f"--pool: {item!r} is not QUEUE=prefork|threads|solo[:N] with a queue of {QUEUE_CONCURRENCY}"
            )
        pools[queue] = (pool, 1 if pool == "solo" else int(count or QUEUE_CONCURRENCY[queue]))
    return pools


# --- Data: users, wallets, seats, tokens (a Django subprocess on the world) ----------------------------------------


def populate(
    world: World, *, users: int, fail_ratio: float, seats: int, label: str, minutes: int, extra: Sequence[str] = ()
) -> dict[str, Any]:
    out = world.tmp / f"setup-{label}.json"
    argv = [
        PYTHON,
        "-m",
        "bench",
        "--internal-setup",
        str(out),
        "--users",
        str(users),
        "--seats",
        str(seats),
        *extra,
    ]
    run_quiet(
        [*argv, "--fail-ratio", str(fail_ratio), "--label", label, "--token-minutes", str(minutes)],
        env=world.env,
        timeout=600,
    )
    data: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return data


def internal_setup(args: argparse.Namespace) -> int:
    """Users of its own for each measurement (so none holds more than 4 seats of the big hall, where every
    measurement books), ``--seats`` fresh seats added to it by ``load_demo --big-hall``, lasting tokens."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    from ticketing.accounts.models import User
    from ticketing.concerts.demo import BIG_HALL_VENUE
    from ticketing.concerts.models import Concert, Performance, Seat
    from ticketing.payments.services import wallet_open, wallet_top_up

    prefix = f"bench-{args.label}-"
    User.objects.using("default").bulk_create(
        [User(username=f"{prefix}{i:05d}", password="!") for i in range(args.users)]
    )
    tokens = []
    for index, user in enumerate(User.objects.using("default").filter(username__startswith=prefix).order_by("id")):
        # Spread the unfunded users evenly, so that failures are spread over the run.
        funded = int((index + 1) * args.fail_ratio) == int(index * args.fail_ratio)
        if funded:
            wallet_top_up(user_id=user.id, amount=TOP_UP)
        else:
            wallet_open(user_id=user.id)
        token = RefreshToken.for_user(user).access_token
        token.set_exp(lifetime=timedelta(minutes=args.token_minutes))  # a real client would refresh it
        tokens.append([user.id, str(token), funded])
    if args.rush_seats:  # a hall of its own, on sale now, with the waiting room or without
        concert = Concert.objects.using("concerts").create(title=f"rush {args.label}", artist="bench")
        starts_at = timezone.now() + timedelta(days=30)
        rush = Performance.objects.using("concerts").create(
            concert=concert, venue="rush", starts_at=starts_at, queue=args.queue
        )
        if args.opens_later:  # the rush sets the real opening just before it starts (a day away until then)
            rush.sales_open_at = timezone.now() + timedelta(days=1)
            rush.save(using="concerts", update_fields=["sales_open_at"])
        seats = [Seat(performance=rush, label=f"R-{i:04d}", grade="S", price=10_000) for i in range(args.rush_seats)]
        ids = [seat.id for seat in Seat.objects.using("concerts").bulk_create(seats)]
        Path(args.internal_setup).write_text(json.dumps({"users": tokens, "seats": ids, "performance": rush.id}))
        return 0
    hall = Seat.objects.using("concerts").filter(performance__venue=BIG_HALL_VENUE)
    existing = hall.count()
    call_command("load_demo", big_hall=existing + args.seats, stdout=io.StringIO())
    ids = list(hall.order_by("label").values_list("id", flat=True)[existing:])
    Path(args.internal_setup).write_text(json.dumps({"users": tokens, "seats": ids}))
    return 0


# --- The system under test ----------------------------------------------------------------------------------------


class System:
    """The web server, a Celery worker per queue, beat and the relays, each in a session of its own."""

    def __init__(self, world: World, config: Config, args: argparse.Namespace, log_dir: Path) -> None:
        self.port = free_port()
        self.world, self.log_dir = world, log_dir
        env = {**world.env, **config.env}
        celery = [str(BIN / "celery"), "-A", "celery_app"]
        self.commands = {"web": (web_command(args.web, self.port, args.web_workers), env)}
        pools = worker_pools(args.pool) if config.worker_app == "celery_app" else {}
        for name, default in QUEUE_CONCURRENCY.items():
            worker = [str(BIN / "celery"), "-A", config.worker_app, "worker", "-Q", name, "-n", f"{name}@%h"]
            pool, n = pools.get(name, ("prefork", default))
            options = ["--concurrency", str(n), *config.worker_options, "--without-mingle", "--without-gossip"]
            if config.worker_app == "celery_app":
                options += ["--pool", pool]
            self.commands[f"celery-{name}"] = ([*worker, *options, "-l", "WARNING"], env)
        self.commands["beat"] = ([*celery, "beat", "-s", str(log_dir / "beat-schedule"), "-l", "WARNING"], env)
        for name, extra in config.relays.items():
            command = "relay" if name == "relay" else "celery_outbox_relay"
            self.commands[name] = ([PYTHON, "manage.py", command], {**env, **extra})
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for name, (argv, env) in self.commands.items():
            with (self.log_dir / f"{name}.log").open("ab") as out:
                self.procs[name] = subprocess.Popen(
                    argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}; its log ends:\n{tail}")

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        web = queues = False
        while time.monotonic() < deadline and not (web and queues):
            self.check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(b"GET /api/concerts/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                web = sock.recv(64).startswith(b"HTTP/1.1 200")
            queues = self.workers_listening()
            time.sleep(0.5)
        if not (web and queues):
            raise RuntimeError(f"the system was not ready after {timeout}s (web={web}, queues={queues})")

    def workers_listening(self) -> bool:
        """Workers log nothing at WARNING when ready: a consumer on each queue is the sign (on Redis, which
        lists no consumers, each queue's worker answering a ping)."""
        if DEFAULT_STACK:
            from celery import Celery

            with Celery(broker=self.world.broker_url) as app:  # closes its broker connection
                replies = app.control.ping(timeout=1)
            answered = {name.split("@")[0] for reply in replies for name in reply}
            return answered >= set(QUEUE_CONCURRENCY)
        listing = rabbitmqctl("list_queues", "-p", self.world.vhost, "name", "consumers", "--no-table-headers")
        consumers = dict(line.split()[:2] for line in listing.splitlines() if line.strip())
        return all(int(consumers.get(name, 0)) >= 1 for name in QUEUE_CONCURRENCY)

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group too: pool children may outlive their parent
            proc.wait(timeout=10)


# --- Load and observation -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Booking:
    seat_id: int
    user: int
    t_sched: float  # open loop: latency counts from the due time (no coordinated omission)
    t_send: float = 0.0
    t_done: float = 0.0
    code: int | str = 0
    res_id: int | None = None
    status: str = ""
    t_seen: float = 0.0  # when the poller first saw it terminal
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Poller(threading.Thread):
    """Reads the concerts database every ``interval`` for the oldest pending reservations, in bulk."""

    def __init__(self, world: World, interval: float) -> None:
        super().__init__(daemon=True, name="settle-poller")
        self.dsn, self.interval = {**PG, "dbname": world.dbs["concerts"]}, interval
        self.incoming: deque[Booking] = deque()
        self.pending: dict[int, Booking] = {}
        self.settled = self.max_pending = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def outstanding(self) -> int:
        return len(self.pending) + len(self.incoming)

    def run(self) -> None:
        try:
            conn = psycopg2.connect(**self.dsn)
            conn.autocommit = True
            cur = conn.cursor()
            while not self.stopping.wait(self.interval):
                while self.incoming:
                    booking = self.incoming.popleft()
                    self.pending[booking.res_id or 0] = booking
                self.max_pending = max(self.max_pending, len(self.pending))
                if not self.pending:
                    continue
                ids = sorted(self.pending)[:1000]
                # The id range keeps PostgreSQL on the primary key; "status || ''" keeps it off the
                # (status, created_at) index, through which it would read every terminal row.
                cur.execute(
                    "SELECT id, status, created_at, updated_at FROM concerts_reservation "
                    "WHERE id BETWEEN %s AND %s AND id = ANY(%s) AND status || '' = ANY(%s)",
                    (ids[0], ids[-1], ids, list(TERMINAL)),
                )
                seen = time.monotonic()
                for res_id, status, created_at, updated_at in cur.fetchall():
                    booking = self.pending.pop(res_id)
                    booking.status, booking.t_seen, booking.created_at, booking.updated_at = (
                        status,
                        seen,
                        created_at,
                        updated_at,
                    )
                    self.settled += 1
            conn.close()
        except BaseException as exc:
            self.error = exc
            raise


@dataclass
class Load:
    """Bookings of one distinct seat each, sent with aiohttp from an event loop in a thread of its own."""

    port: int
    users: list[list[Any]]
    seats: list[int]
    poller: Poller
    bookings: list[Booking] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def booking(self, t_sched: float) -> Booking | None:
        i = len(self.bookings)
        if i >= len(self.seats) or self.stopping.is_set():
            return None
        self.bookings.append(Booking(self.seats[i], i % len(self.users), t_sched))
        return self.bookings[-1]

    async def book(self, session: aiohttp.ClientSession, booking: Booking) -> None:
        headers = {"Authorization": f"Bearer {self.users[booking.user][1]}", "Content-Type": "application/json"}
        booking.t_send = time.monotonic()
        try:
            url = f"http://127.0.0.1:{self.port}/api/reservations/"
            async with session.post(url, data=b'{"seat_id": %d}' % booking.seat_id, headers=headers) as response:
                body = await response.read()
                booking.code = response.status
                if response.status == 202:
                    booking.res_id = int(json.loads(body)["id"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            booking.code = type(exc).__name__
        booking.t_done = time.monotonic()
        if booking.res_id is not None:
            self.poller.incoming.append(booking)

    async def closed(self, session: aiohttp.ClientSession, concurrency: int, duration: float) -> None:
        end = time.monotonic() + duration

        async def client() -> None:
            while time.monotonic() < end and (booking := self.booking(time.monotonic())):
                await self.book(session, booking)

        await asyncio.gather(*(client() for _ in range(concurrency)))

    async def open(self, session: aiohttp.ClientSession, rate: float, duration: float) -> None:
        t0, tasks = time.monotonic(), []
        for i in range(math.ceil(rate * duration)):
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if (booking := self.booking(due)) is None:
                break
            tasks.append(asyncio.create_task(self.book(session, booking)))
        await asyncio.gather(*tasks)

    def start(self, args: argparse.Namespace) -> threading.Thread:
        async def drive() -> None:
            connector = aiohttp.TCPConnector(limit=0)  # a connection per booking in flight, as many clients
            timeout = aiohttp.ClientTimeout(total=args.request_timeout)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                if args.mode == "closed":
                    await self.closed(session, args.concurrency, args.duration)
                else:
                    await self.open(session, args.rate, args.duration)

        thread = threading.Thread(target=asyncio.run, args=(drive(),), daemon=True, name="load")
        thread.start()
        return thread


def progress_line(t0: float, load: Load, poller: Poller, phase: str) -> str:
    done = [b for b in load.bookings if b.t_done]
    accepted = sum(1 for b in done if b.code == 202)
    elapsed = time.monotonic() - t0
    return (
        f"{phase:<8} {elapsed:6.1f}s  sent {len(load.bookings):>6}  202 {accepted:>6}  other {len(done) - accepted:>4} "
        f"in flight {len(load.bookings) - len(done):>4}  settled {poller.settled:>6} "
        f"({poller.settled / max(elapsed, 1e-9):6.1f}/s)  pending {poller.outstanding():>5}"
    )


# --- One measurement --------------------------------------------------------------------------------------------


def measure(args: Any, world: World, system: System, data: dict[str, Any], label: str, sampler: Any) -> dict[str, Any]:
    poller = Poller(world, args.poll_interval)
    poller.start()
    load = Load(system.port, data["users"], data["seats"], poller)
    progress = Progress(label)
    pg_before = world.pg_stats()
    mark = sampler.mark() if sampler else None
    t0 = time.monotonic()
    try:
        thread = load.start(args)
        while thread.is_alive():
            progress.show(progress_line(t0, load, poller, "booking"))
            system.check_alive()
            time.sleep(0.25)
        t_load_end = time.monotonic()
        while poller.outstanding() and time.monotonic() - t_load_end < args.settle_timeout:
            if poller.error:
                raise RuntimeError(f"the poller failed: {poller.error!r}")
            progress.show(progress_line(t0, load, poller, "settling"))
            system.check_alive()
            time.sleep(0.1)
        progress.show(progress_line(t0, load, poller, "TIMEOUT" if poller.outstanding() else "settled"), force=True)
        progress.done()
        for _ in range(300):  # the relays finish what is left (marking sent after the consumers ran)
            outbox = world.outbox()
            if not any(counts.get("PENDING") for counts in outbox.values()):
                break
            time.sleep(0.2)
        settled = sum(1 for b in load.bookings if b.status)
        cpu = sampler.since(mark, settled) if sampler and mark else None
        time.sleep(1.5)  # let the backends flush their statistics
        pg_after = world.pg_stats()
    finally:
        load.stopping.set()
        poller.stopping.set()
        poller.join(timeout=5)
    result = summarize(load, poller, world)
    result |= {"outbox_and_inbox_rows": outbox, "cpu": cpu}
    n = max(result["settled"], 1)
    result["postgres_per_saga"] = {
        alias: {k: d for k, v in before.items() if (d := round((pg_after[alias].get(k, 0) - v) / n, 2))}
        for alias, before in pg_before.items()
    }
    return result


def summarize(load: Load, poller: Poller, world: World) -> dict[str, Any]:
    bookings = [b for b in load.bookings if b.t_done]
    accepted = [b for b in bookings if b.code == 202]
    settled = [b for b in accepted if b.status and b.created_at and b.updated_at]
    first_send = min((b.t_send for b in bookings), default=0.0)
    send_window = max(max((b.t_done for b in bookings), default=0.0) - first_send, 1e-9)
    settle_window = max(max((b.t_seen for b in settled), default=0.0) - first_send, 1e-9)
    statuses = Counter(b.status for b in settled)
    return {
        "sent": len(load.bookings),
        "answered": len(bookings),
        "accepted_202": len(accepted),
        "non_202": dict(Counter(str(b.code) for b in bookings if b.code != 202)),
        "ran_out_of_seats": len(load.bookings) == len(load.seats),
        "settled": len(settled),
        "unsettled": len(accepted) - len(settled),
        "confirmed": statuses.get("CONFIRMED", 0),
        "system_canceled": statuses.get("SYSTEM_CANCELED", 0),
        "offer_window_s": round(max((b.t_send for b in bookings), default=0.0) - first_send, 3),
        "send_window_s": round(send_window, 3),
        "accepted_per_s": round(len(accepted) / send_window, 1),
        "settle_window_s": round(settle_window, 3),
        "settled_per_s": round(len(settled) / settle_window, 1),
        "max_pending_sagas": poller.max_pending,
        "request_latency_ms": percentiles(b.t_done - b.t_sched for b in bookings),
        "request_service_ms": percentiles(b.t_done - b.t_send for b in bookings),
        "terminal_latency_ms_db": percentiles(
            (b.updated_at - b.created_at).total_seconds() for b in settled if b.updated_at and b.created_at
        ),
        "terminal_latency_ms_observed": percentiles(b.t_seen - b.t_send for b in settled),
        "hops_ms": hop_breakdown(world, settled),
    }


def hop_breakdown(world: World, settled: list[Booking]) -> dict[str, Any]:
    """Where a saga's time goes, from the outbox and inbox timestamps the services write (one clock)."""
    wanted = {str(b.res_id): b for b in settled}

    def rows(alias: str, table: str, columns: str, event: str) -> dict[str, tuple[Any, ...]]:
        found = world.query(alias, f"SELECT correlation_id, {columns} FROM outbox_{table} WHERE event LIKE %s", [event])
        return {row[0]: row[1:] for row in found if row[0] in wanted}

    reserve_out = rows("concerts", "outboxmessage", "created_at, sent_at", "concert-reserve")
    pay_in = rows("payments", "inboxmessage", "received_at", "concert-reserve")
    pay_out = rows("payments", "outboxmessage", "created_at, sent_at", "payment-%")
    conc_in = rows("concerts", "inboxmessage", "received_at", "payment-%")
    stages: dict[str, list[float]] = {}
    for key, b in wanted.items():
        if not all(key in d for d in (reserve_out, pay_in, pay_out, conc_in)):
            continue
        values = {
            "1 booking row -> payments consumer starts": pay_in[key][0] - b.created_at,
            "2 payments consumer (charge + outbox row)": pay_out[key][0] - pay_in[key][0],
            "3 payment event row -> concerts consumer starts": conc_in[key][0] - pay_out[key][0],
            "4 concerts consumer (confirm/compensate)": b.updated_at - conc_in[key][0],
        }
        for alias, row in (("concerts", reserve_out[key]), ("payments", pay_out[key])):
            if row[1]:
                values[f"relay {alias}: row created -> marked sent"] = row[1] - row[0]
        for name, value in values.items():
            stages.setdefault(name, []).append(value.total_seconds())
    return {name: percentiles(values) for name, values in sorted(stages.items())}


def run_config(args: argparse.Namespace, world: World, name: str, rep: int) -> dict[str, Any]:
    """One measurement of one configuration, on processes started for it and stopped after it."""
    label = f"{name} {args.mode} {rep}/{args.repeat}"
    minutes = max(15, math.ceil((args.duration + args.settle_timeout) / 60) + 5)
    setup = {"fail_ratio": args.fail_ratio, "minutes": minutes}
    warm_users = math.ceil(args.warmup / SEATS_PER_USER)
    warm = populate(world, users=warm_users, seats=args.warmup, label=f"warm-{name}-{rep}", **setup)
    data = populate(world, users=args.users, seats=args.seats, label=f"{name}-{rep}", **setup)
    for alias in world.dbs:  # fresh tables have no statistics yet; a database that has run for a while has
        world.query(alias, "ANALYZE")
    log_dir = world.tmp / "logs" / f"{name}-{args.mode}-{rep}"
    log_dir.mkdir(parents=True)
    system = System(world, CONFIGS[name], args, log_dir)
    sampler = None
    try:
        system.start()
        log(f"{label}: started {', '.join(f'{n} ({p.pid})' for n, p in system.procs.items())}; waiting until ready")
        system.wait_ready()
        sampler = CpuSampler({proc.pid: n for n, proc in system.procs.items()}, f"{world.run}_")
        sampler.start()
        if args.warmup:
            warm_args = argparse.Namespace(**{**vars(args), "concurrency": 4, "mode": "closed", "duration": 60})
            warmup = measure(warm_args, world, system, warm, f"{name} warm-up", None)
            if warmup["unsettled"] or warmup["accepted_202"] != args.warmup:
                raise RuntimeError(f"the warm-up did not go through: {json.dumps(warmup, default=str)[:2000]}")
        log(f"{label}: {len(data['seats'])} fresh seats")
        rss_at_start = sampler.rss_mb()
        result = measure(args, world, system, data, label, sampler)
        result |= {"rss_mb_at_start": rss_at_start, "rss_mb_max": sampler.rss_mb()}
    finally:
        if sampler:
            sampler.stopping.set()
        system.stop()
    result |= {"config": name, "audit": world.audit(), "log_problems": log_problems(log_dir)}
    result["failures"] = failures(args, result)
    return result


def failures(args: argparse.Namespace, r: dict[str, Any]) -> list[str]:
    """What makes a measurement FAILED: a failed audit, an unsettled saga, an answer that is not clean."""
    found = [] if r["audit"]["passed"] else ["the audit failed"]
    if r["unsettled"] or r["answered"] < r["sent"]:
        found.append(f"{r['unsettled']} sagas unsettled, {r['sent'] - r['answered']} requests unanswered")
    # A clean refusal (409, 429) is an answer in a burst; elsewhere every fresh seat must be accepted.
    clean = {"409", "429"} if args.mode == "burst" else set()
    if bad := {code: n for code, n in r["non_202"].items() if code not in clean}:
        found.append(f"answers other than 202: {bad}")
    if args.mode == "burst" and r["settle_window_s"] > args.burst_settle:
        found.append(f"settled in {r['settle_window_s']} s, more than {args.burst_settle} s")
    return found


def log_problems(log_dir: Path) -> dict[str, Any]:
    """WARNING and worse lines the processes logged, counted per process, with a few examples."""
    found: dict[str, Any] = {}
    for path in sorted(log_dir.glob("*.log")):
        lines = [
            line
            for line in path.read_text(errors="replace").splitlines()
            if any(level in line for level in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback"))
        ]
        if lines:
            found[path.stem] = {"count": len(lines), "first": lines[:5]}
    return found


# --- Reporting ----------------------------------------------------------------------------------------------------


SUMMARY_KEYS = {
    "settled_per_s": lambda r: r["settled_per_s"],
    "request_p50_ms": lambda r: r["request_latency_ms"]["p50"],
    "request_p99_ms": lambda r: r["request_latency_ms"]["p99"],
    "terminal_p50_ms": lambda r: r["terminal_latency_ms_db"]["p50"],
    "terminal_p99_ms": lambda r: r["terminal_latency_ms_db"]["p99"],
    "settle_window_s": lambda r: r["settle_window_s"],
    "system_cpu_ms_per_saga": lambda r: (r["cpu"] or {}).get("system_ms_per_unit"),
    "largest_rss_mib": lambda r: max(r["rss_mb_max"].values(), default=None),
    "other_processes_cores": lambda r: (r["cpu"] or {}).get("other_processes_cores"),
}


def compare(result: dict[str, Any]) -> dict[str, Any]:
    """Each configuration's medians [min - max], and each as a ratio to ours (when ours ran)."""
    by_config: dict[str, Any] = {}
    for name in result["config"]["configs"]:
        reps = [r for r in result["reps"] if r["config"] == name]
        values = {key: [v for v in map(get, reps) if v is not None] for key, get in SUMMARY_KEYS.items()}
        by_config[name] = {"title": CONFIGS[name].title, "summary": {k: spread(v) for k, v in values.items() if v}}
    ours = by_config.get("ours", {}).get("summary", {})
    for entry in by_config.values():
        entry["ratio_to_ours"] = {
            key: round(st["median"] / ours[key]["median"], 2)
            for key, st in entry["summary"].items()
            if ours.get(key, {}).get("median")
        }
    return by_config


def print_rep(label: str, r: dict[str, Any]) -> None:
    def p(d: dict[str, Any]) -> str:
        return f"p50 {d['p50']}  p95 {d['p95']}  p99 {d['p99']}  max {d['max']} ms" if d["n"] else "n/a"

    print(f"--- {label}: {'FAILED: ' + '; '.join(r['failures']) if r['failures'] else 'passed'}")
    print(f"  sent {r['sent']} over {r['offer_window_s']} s, 202 {r['accepted_202']}, other {r['non_202'] or 0}")
    print(
        f"  settled {r['settled']} ({r['confirmed']} CONFIRMED), {r['settled_per_s']}/s over {r['settle_window_s']} s"
    )
    print(f"  request latency       {p(r['request_latency_ms'])}")
    print(f"  booking->terminal db  {p(r['terminal_latency_ms_db'])}   (updated_at - created_at)")
    for stage, d in r["hops_ms"].items():
        print(f"    {stage:<48} {p(d)}")
    for group, ms in (r["cpu"] or {}).get("ms_per_unit", {}).items():
        print(f"  CPU {group:<22} {ms:7.3f} ms/saga")
    print(f"  CPU of the system (all but harness, bystanders): {(r['cpu'] or {}).get('system_ms_per_unit')} ms/saga")
    for alias, stats in r["postgres_per_saga"].items():
        print(f"  postgres {alias:<9} per saga: {stats}")
    print(f"  largest resident set per process (MiB): {r['rss_mb_max']} (at the start: {r['rss_mb_at_start']})")
    print(f"  audit: {'passed' if r['audit']['passed'] else 'FAILED: ' + r['audit']['output'][-500:]}")


def print_comparison(by_config: dict[str, Any]) -> None:
    print("--- configurations side by side: median [min - max] (ratio to ours)")
    for entry in by_config.values():
        print(f"  {entry['title']}")
        for key, st in entry["summary"].items():
            ratio = entry["ratio_to_ours"].get(key)
            print(f"    {key:<24} {st['median']:>9}  [{st['min']} - {st['max']}]{f'  ({ratio}x)' if ratio else ''}")


def draw_chart(result: dict[str, Any], path: Path) -> None:
    by_config, config, machine = result["by_config"], result["config"], result["machine"]
    loop = {"closed": "closed loop, saturation", "burst": "burst"}.get(
        config["mode"], f"open loop at {config['rate']:g}/s"
    )
    series = {e["title"]: e["summary"] for e in by_config.values()}
    panels = [
        (f"sagas settled per second ({loop})", {t: {"settled/s": s.get("settled_per_s")} for t, s in series.items()}),
        (
            "booking -> CONFIRMED/SYSTEM_CANCELED (ms)",
            {t: {"p50": s.get("terminal_p50_ms"), "p99": s.get("terminal_p99_ms")} for t, s in series.items()},
        ),
    ]
    title = (
        f"bench, {result['started'][:10]}: {machine['nproc']} cores, PostgreSQL {machine['postgresql']}, "
        f"RabbitMQ {machine['rabbitmq']}; median of {config['repeat']} runs, whiskers min-max"
    )
    bar_chart(path, panels, title)


# --- Main ---------------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace, argv: list[str]) -> int:
    """The closed, open and burst modes (``python -m bench``, bench/cli.py)."""
    settings_module = "bench.saga_settings" if "dco" in args.configs else "ticketing.settings"
    world = World(settings_module=settings_module, extra_env=dict(item.split("=", 1) for item in args.env))
    result = new_result(args.mode, argv, {k: v for k, v in vars(args).items() if not k.startswith("internal")})
    result["reps"] = []
    with interruptible(result, world, args.keep):
        log(f"{world.run}: creating databases {', '.join(world.dbs.values())} and vhost {world.vhost}, migrating")
        world.create()
        for rep in range(1, args.repeat + 1):
            for name in args.configs:  # every configuration once per repeat: drifting load hits them alike
                result["reps"].append(run_config(args, world, name, rep))
                print_rep(f"{CONFIGS[name].title}, {args.mode} {rep}/{args.repeat}", result["reps"][-1])
        result["status"] = "FAILED" if any(r["failures"] for r in result["reps"]) else "PASSED"
    if result["reps"]:
        result["by_config"] = compare(result)
        print_comparison(result["by_config"])
        if args.chart:
            draw_chart(result, args.chart)
    out = write_result(result, args.out)
    print(f"{result['status']}: wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if result["status"] == "PASSED" else 1
