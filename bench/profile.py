"""Where the time goes inside each process, per saga step: pyinstrument over each step, in this one process.

    .venv/bin/python -m bench.profile [--sagas 300] [--out bench/results]

Builds a world of its own as bench.saga does (three fresh PostgreSQL databases, a RabbitMQ vhost, users
with funded wallets, seats), sets up Django on it in this process and profiles, one after the other:

1. the booking request: ``POST /api/reservations/`` through ``django.test.Client`` (what a gunicorn worker
   runs, less gunicorn's HTTP parsing; the request_started/finished connection checks that the test client
   leaves out are made by hand, as the real handler makes them);
2. the payments consumer: each booking's ``concert-reserve`` outbox row, consumed as the payments task
   does (``refresh_connection`` + ``consume``), without Celery's own per-task work (kombu, ack, tracing);
3. the concerts consumer: each ``payment-success``/``payment-fail`` row, consumed the same way by concerts.

Each step runs ``--warmup`` calls, then ``--sagas`` calls timed bare, then ``--sagas`` calls profiled; every
saga must end CONFIRMED. For each step it prints the wall time per saga (bare and profiled), pyinstrument's
samples grouped by library (each sample goes to the innermost frame that belongs to a known group: our
code, the ORM, psycopg2 including the wait on PostgreSQL, DRF, auth, the rest of Django, ...), the
heaviest frames by self time, and the round trips to PostgreSQL of one call. pyinstrument's text reports
go to ``OUT/profile-<step>.txt`` (``.all.txt``: every frame), the numbers to ``OUT/profile-summary.json``.
The databases and the vhost are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from pyinstrument import Profiler
from pyinstrument.frame_info import frame_info_get_identifier

from bench.common import RESULTS, ROOT, logger, machine_info
from bench.saga import World

log = logger("profile")

T = TypeVar("T")
Handler = Callable[[dict[str, Any]], None]

BUILT_IN = "<built-in>"
# Methods of psycopg2's C connection and cursor: where the driver works and waits on PostgreSQL.
DRIVER_METHODS = ("cursor.", "connection.")
# pyinstrument names connection.commit() as a C frame, but rarely cursor.execute(): after its round trip
# psycopg2 decodes the answer with the codec utf_8_decode, and the wait is sampled at that C call, whose
# stack ends in execute()'s Python caller. So the self time of these callers is the driver's.
DRIVER_CALLERS = {
    ("_execute", "django/db/backends/utils.py"),
    ("_executemany", "django/db/backends/utils.py"),
    ("is_usable", "django/db/backends/postgresql/base.py"),  # the health check's SELECT 1
}
DRIVER = "psycopg2 (driver + PostgreSQL wait)"
OTHER = "python/other"
# Checked in this order against each frame's file path, the innermost frame first.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("our code (ticketing/)", (f"{ROOT}/ticketing/",)),
    (DRIVER, ("/psycopg2/",)),
    ("ORM (django/db/)", ("/django/db/",)),
    ("auth (simplejwt, jwt)", ("/rest_framework_simplejwt/", "/jwt/")),
    ("DRF (rest_framework/)", ("/rest_framework/",)),
    ("test client (django/test/)", ("/django/test/",)),
    ("django other (request, middleware)", ("/django/", "/whitenoise/")),
    ("celery/kombu", ("/celery/", "/kombu/")),
    ("harness (bench/)", (f"{ROOT}/bench/",)),
)
GROUP_NAMES = [name for name, _ in GROUPS] + [OTHER]


# --- Reading pyinstrument's samples ------------------------------------------------------------------------


def frame_parts(frame_info: str) -> tuple[str, str, str]:
    """(function, file path, first line) of one frame of a sample's stack."""
    parts = frame_info_get_identifier(frame_info).split("\x00")
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


@cache
def group_of(function: str, path: str) -> str | None:
    if path == BUILT_IN:
        return DRIVER if function.startswith(DRIVER_METHODS) else None
    path = os.path.abspath(path) if path and not path.startswith("<") else path
    for name, needles in GROUPS:
        if any(needle in path for needle in needles):
            return name
    return None


def is_driver_caller(function: str, path: str) -> bool:
    return (function, short_path(path)) in DRIVER_CALLERS


def classify(stack: Sequence[str]) -> str:
    """The group of the innermost frame that belongs to one (stdlib and C calls count for their caller)."""
    if is_driver_caller(*frame_parts(stack[-1])[:2]):
        return DRIVER
    for frame_info in reversed(stack):
        group = group_of(*frame_parts(frame_info)[:2])
        if group is not None:
            return group
    return OTHER


def short_path(path: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def leaf_label(stack: Sequence[str]) -> str:
    """The frame a sample's self time belongs to; a C function is named with its Python caller."""
    function, path, line = frame_parts(stack[-1])
    if path == BUILT_IN and len(stack) > 1:
        caller, caller_path, caller_line = frame_parts(stack[-2])
        return f"{function} [C] <- {caller} ({short_path(caller_path)}:{caller_line})"
    label = f"{function} ({short_path(path)}:{line})"
    return f"{label} = in psycopg2's cursor.execute" if is_driver_caller(function, path) else label


# --- One profiled step -------------------------------------------------------------------------------------


@dataclass
class StepResult:
    title: str
    slug: str
    sagas: int
    wall_s: float
    unprofiled_wall_s: float
    unprofiled_db_s: float
    groups_s: dict[str, float]
    top_self_s: list[tuple[str, float]]
    queries: list[str]

    @property
    def sampled_s(self) -> float:
        return sum(self.groups_s.values())

    def ms_per_saga(self, seconds: float) -> float:
        return seconds * 1000 / self.sagas

    def bare_estimate_s(self, group: str) -> float:
        """A group's time in the bare run: the timed round trips for the driver; for the others, the rest of
        the bare wall time split as their profiled samples are (as if the profiler slowed them alike)."""
        if group == DRIVER:
            return self.unprofiled_db_s
        python = self.sampled_s - self.groups_s.get(DRIVER, 0.0)
        rest = max(0.0, self.unprofiled_wall_s - self.unprofiled_db_s)
        return rest * self.groups_s[group] / python if python else 0.0

    def summary(self) -> dict[str, Any]:
        sampled = self.sampled_s or 1.0
        return {
            "title": self.title,
            "sagas": self.sagas,
            "wall_ms_per_saga_unprofiled": round(self.ms_per_saga(self.unprofiled_wall_s), 3),
            "round_trips_ms_per_saga_unprofiled": round(self.ms_per_saga(self.unprofiled_db_s), 3),
            "wall_ms_per_saga_profiled": round(self.ms_per_saga(self.wall_s), 3),
            "sampled_ms_per_saga": round(self.ms_per_saga(self.sampled_s), 3),
            "groups": {
                name: {
                    "ms_per_saga": round(self.ms_per_saga(s), 3),
                    "share": round(s / sampled, 4),
                    "bare_estimate_ms_per_saga": round(self.ms_per_saga(self.bare_estimate_s(name)), 3),
                }
                for name, s in self.groups_s.items()
            },
            "top_self_ms_per_saga": {label: round(self.ms_per_saga(s), 3) for label, s in self.top_self_s},
            "round_trips_of_one_call": self.queries,
            "text_report": f"profile-{self.slug}.txt",
        }

    def report(self) -> None:
        print(f"--- {self.title}: {self.sagas} sagas")
        bare, db = self.ms_per_saga(self.unprofiled_wall_s), self.ms_per_saga(self.unprofiled_db_s)
        print(
            f"  bare: {bare:.3f} ms/saga, of which {db:.3f} in round trips to PostgreSQL (timed each) and "
            f"{bare - db:.3f} the rest; under the profiler: {self.ms_per_saga(self.wall_s):.3f} ms/saga"
        )
        print(f"  {'group':<38} {'profiled':>8} {'share':>7} {'bare est.':>9}  (ms/saga)")
        sampled = self.sampled_s or 1.0
        for name, seconds in self.groups_s.items():
            estimate = self.ms_per_saga(self.bare_estimate_s(name))
            print(f"  {name:<38} {self.ms_per_saga(seconds):8.3f} {seconds / sampled:7.1%} {estimate:9.3f}")
        print("  heaviest frames by self time (ms/saga):")
        for label, seconds in self.top_self_s:
            print(f"    {self.ms_per_saga(seconds):7.3f}  {label}")
        print(f"  round trips to PostgreSQL of one call ({len(self.queries)}):")
        for sql in self.queries:
            print(f"    {sql[:150]}")


class DatabaseProbe:
    """Times every round trip to PostgreSQL, on every database, and notes them in order while ``noting``.

    The statements run through Django's cursors (SAVEPOINTs included); besides them the health check's
    ``SELECT 1``, the ``COMMIT``, and the ``BEGIN`` that psycopg2 sends before the first statement once
    autocommit is off (its time counts with that statement's). The timing costs a few microseconds a trip.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.noting = False
        self.notes: list[str] = []

    def note(self, alias: str, what: str | None) -> None:
        if self.noting and what:
            self.notes.append(f"{alias}: {what}")

    def wrap(
        self, alias: str, what: Callable[..., str | None], original: Callable[..., Any], *, timed: bool
    ) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.note(alias, what(*args))
            if not timed:
                return original(*args)
            started = time.perf_counter()
            try:
                return original(*args)
            finally:
                self.seconds += time.perf_counter() - started

        return call

    def execute(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        self.note(context["connection"].alias, " ".join(str(sql).split()))
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started

    @contextmanager
    def installed(self) -> Iterator[DatabaseProbe]:
        from django.db import connections

        # method -> (what its round trip is, whether it makes one): turning autocommit off costs no trip,
        # psycopg2 sends BEGIN with the next statement.
        trips: dict[str, tuple[Callable[..., str | None], bool]] = {
            "is_usable": (lambda: "SELECT 1 (the health check)", True),
            "_commit": (lambda: "COMMIT", True),
            "_rollback": (lambda: "ROLLBACK", True),
            "_set_autocommit": (noting_begin, False),
        }
        with ExitStack() as stack:
            for alias in connections:
                connection = connections[alias]
                stack.enter_context(connection.execute_wrapper(self.execute))
                for name, (what, timed) in trips.items():
                    wrapped = self.wrap(alias, what, getattr(connection, name), timed=timed)
                    stack.enter_context(mock.patch.object(connection, name, new=wrapped))
            yield self


def noting_begin(autocommit: bool) -> str | None:
    return None if autocommit else "BEGIN (sent by psycopg2 before the next statement)"


def run_step(
    title: str,
    slug: str,
    call: Callable[[T], None],
    items: Sequence[T],
    args: argparse.Namespace,
) -> StepResult:
    """``call`` over ``items``: ``--warmup`` of them to warm up (the last one's round trips noted), then
    ``--sagas`` timed bare (and their round trips to PostgreSQL timed), then ``--sagas`` profiled.

    The bare run shows what the profiler adds: its hook runs at every Python call and return, so it
    inflates Python-heavy work more than the wait on PostgreSQL.
    """
    w, n = args.warmup, args.sagas
    if len(items) != w + 2 * n:
        raise ValueError(f"{title}: {len(items)} items for {w} warm-up and 2 x {n} measured calls")
    warm, timed, measured = items[:w], items[w : w + n], items[w + n :]
    for item in warm[:-1]:
        call(item)
    with DatabaseProbe().installed() as probe:
        probe.noting = True
        call(warm[-1])
        probe.noting, probe.seconds = False, 0.0
        started = time.perf_counter()
        for item in timed:
            call(item)
        unprofiled = time.perf_counter() - started

    profiler = Profiler(interval=args.interval, async_mode="disabled")
    profiler.start()
    started = time.perf_counter()
    for item in measured:
        call(item)
    wall = time.perf_counter() - started
    session = profiler.stop()

    groups: defaultdict[str, float] = defaultdict(float)
    leaves: defaultdict[str, float] = defaultdict(float)
    for stack, seconds in session.frame_records:
        groups[classify(stack)] += seconds
        leaves[leaf_label(stack)] += seconds
    for suffix, show_all in (("txt", False), ("all.txt", True)):
        text = profiler.output_text(unicode=True, color=False, show_all=show_all)
        (args.out / f"profile-{slug}.{suffix}").write_text(text)
    return StepResult(
        title=title,
        slug=slug,
        sagas=len(measured),
        wall_s=wall,
        unprofiled_wall_s=unprofiled,
        unprofiled_db_s=probe.seconds,
        groups_s={name: groups[name] for name in GROUP_NAMES if name in groups},
        top_self_s=sorted(leaves.items(), key=lambda item: item[1], reverse=True)[: args.top],
        queries=probe.notes,
    )


# --- The saga's steps, in this process ---------------------------------------------------------------------


def setup_django(env: dict[str, str]) -> None:
    """The world's environment, exactly (no REDIS_URL and the like from ours), then Django."""
    for key in set(os.environ) - set(env):
        del os.environ[key]
    os.environ.update(env)
    import django

    django.setup()


def as_received(envelope: dict[str, object]) -> dict[str, Any]:
    """The envelope as a consumer gets it: through JSON, as the broker carries it."""
    received: dict[str, Any] = json.loads(json.dumps(envelope))
    return received


def profile_saga(args: argparse.Namespace, data: dict[str, Any]) -> list[StepResult]:
    from django.db import close_old_connections
    from django.test import Client

    from ticketing.concerts import services as concerts
    from ticketing.concerts.models import Reservation, ReservationStatus
    from ticketing.outbox.consume import consume, refresh_connection
    from ticketing.outbox.models import OutboxMessage
    from ticketing.payments import services as payments

    tokens = [token for _, token, funded in data["users"] if funded]
    seats: list[int] = data["seats"]
    bookings = [(tokens[i % len(tokens)], seat) for i, seat in enumerate(seats)]
    client = Client(SERVER_NAME="127.0.0.1", raise_request_exception=True)

    def book(item: tuple[str, int]) -> None:
        token, seat_id = item
        close_old_connections()  # request_started, as gunicorn's handler sends it (the test client does not)
        response = client.post(
            "/api/reservations/",
            {"seat_id": seat_id},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        close_old_connections()  # request_finished
        if response.status_code != 202:
            raise RuntimeError(f"POST /api/reservations/ answered {response.status_code}: {response.content[:500]!r}")

    def consumer(using: str, handlers: Mapping[str, Handler]) -> Handler:
        def handle(envelope: dict[str, Any]) -> None:
            refresh_connection(using)  # what run_consumer does before consuming
            if not consume(envelope, using=using, handlers=handlers):
                raise RuntimeError(f"{using}: {envelope['event']} {envelope['event_id']} was consumed before")

        return handle

    def by_reservation(envelopes: dict[str, dict[str, Any]], ids: list[int], what: str) -> list[dict[str, Any]]:
        missing = [i for i in ids if str(i) not in envelopes]
        if missing:
            raise RuntimeError(f"no {what} outbox row for reservations {missing[:10]} ({len(missing)} in all)")
        return [envelopes[str(i)] for i in ids]

    results = [
        run_step(
            "booking request (POST /api/reservations/ via django.test.Client)",
            "booking",
            book,
            bookings,
            args,
        )
    ]
    reservation_ids = list(Reservation.objects.using(concerts.DB).order_by("id").values_list("id", flat=True))
    if len(reservation_ids) != len(bookings):
        raise RuntimeError(f"{len(bookings)} bookings accepted but {len(reservation_ids)} reservations exist")

    reserve = {
        row.aggregate_id: as_received(row.envelope())
        for row in OutboxMessage.objects.using(concerts.DB).filter(event="concert-reserve")
    }
    results.append(
        run_step(
            "payments consumer (concert-reserve; consume() without Celery's per-task overhead)",
            "payments-consumer",
            consumer(payments.DB, payments.EVENT_HANDLERS),
            by_reservation(reserve, reservation_ids, "concert-reserve"),
            args,
        )
    )

    outcome = {
        row.correlation_id: as_received(row.envelope())
        for row in OutboxMessage.objects.using(payments.DB).filter(event__in=["payment-success", "payment-fail"])
    }
    results.append(
        run_step(
            "concerts consumer (payment-success/fail; consume() without Celery's per-task overhead)",
            "concerts-consumer",
            consumer(concerts.DB, concerts.EVENT_HANDLERS),
            by_reservation(outcome, reservation_ids, "payment outcome"),
            args,
        )
    )

    statuses = Counter(Reservation.objects.using(concerts.DB).values_list("status", flat=True))
    if statuses != Counter({ReservationStatus.CONFIRMED.value: len(bookings)}):
        raise RuntimeError(f"expected {len(bookings)} CONFIRMED reservations, found {dict(statuses)}")
    log(f"all {len(bookings)} sagas CONFIRMED ({args.warmup} warm-up, {args.sagas} timed bare, {args.sagas} profiled)")
    return results


# --- Main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sagas", type=int, default=300, help="sagas profiled (and as many timed bare) per step")
    parser.add_argument("--warmup", type=int, default=20, help="sagas run first, not measured")
    parser.add_argument("--users", type=int, default=50)
    # A sample takes all the time since the one before: a round trip also gets up to an interval of the work
    # before it. At 0.5 ms that moved 1.6 ms/booking of Python into psycopg2 (see the timed round trips).
    parser.add_argument("--interval", type=float, default=0.0001, help="pyinstrument's sampling interval (s)")
    parser.add_argument("--top", type=int, default=8, help="heaviest frames shown per step")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory of the reports (default bench/results)")
    args = parser.parse_args(argv)
    if args.sagas < 1 or args.warmup < 1:
        parser.error("--sagas and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    args.out.mkdir(parents=True, exist_ok=True)
    world = World(f"prof{secrets.token_hex(4)}", extra_env={}, settings_module="ticketing.settings")
    django_ready = False
    try:
        log(f"creating databases {', '.join(world.dbs.values())} and vhost {world.vhost}, migrating")
        world.create()
        data = world.populate(users=args.users, fail_ratio=0.0, seats=args.warmup + 2 * args.sagas, label="profile")
        world.analyze()
        setup_django(world.env)
        django_ready = True
        results = profile_saga(args, data)
    finally:
        if django_ready:
            from django.db import connections

            connections.close_all()
        world.destroy()
        shutil.rmtree(world.tmp, ignore_errors=True)
        log("dropped the databases and the vhost")

    for result in results:
        result.report()
    summary = {
        "command": " ".join([".venv/bin/python -m bench.profile", *(argv if argv is not None else sys.argv[1:])]),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "notes": [
            "pyinstrument samples wall time in this one process: CPU plus the wait on PostgreSQL (under psycopg2)",
            "each sample is attributed to the innermost frame of a known group; stdlib and C calls count for "
            "their caller, except psycopg2's C connection/cursor methods, and the self time of Django's "
            "_execute/_executemany/is_usable, which is time in cursor.execute (sampled at psycopg2's codec calls)",
            "wall ms/saga is given unprofiled and profiled: the profiler's hook inflates Python-heavy work most",
            "round trips: timed around each statement, COMMIT and health check in the bare run (a few us each); "
            "bare estimate of a group: that time for psycopg2, the rest of the bare wall split as the profile's "
            "other groups",
            "booking: django.test.Client instead of gunicorn (no HTTP parsing; the test client's own work is "
            "its own group); close_old_connections() around each request as the real handler does",
            "consumers: refresh_connection() + consume(), as run_consumer does, without Celery's per-task "
            "overhead (kombu decode, ack, task tracing, Django fixup)",
        ],
        "machine": machine_info(),
        "steps": {result.slug: result.summary() for result in results},
    }
    path = args.out / "profile-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} and profile-<step>.txt beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
