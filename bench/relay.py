"""Benchmark of the outbox relay: drain throughput, commit->publish latency, and django-celery-outbox.

    .venv/bin/python -m bench.relay                                  # everything, 20,000 rows, 3 reps
    .venv/bin/python -m bench.relay --rows 2000 --repeat 1 --latency-duration 5   # a quick check

The harness builds a world of its own: three fresh PostgreSQL databases (``benchrelay_<run>_<service>``,
all migrated; the benchmark uses ``payments``), one more for django-celery-outbox, and a RabbitMQ vhost
``benchrelay_<run>``. No Celery worker runs: nothing consumes the queues while a drain is timed.

1. Throughput: N pending ``OutboxMessage`` rows (bulk-inserted, one correlation id each, ANALYZEd), then
   ``relay_pending(using="payments", max_batches=huge, batch_size=B)`` is timed until no row is PENDING,
   for each B. Checked afterwards: every row SENT, the queue holds exactly N messages.
2. The per-message-confirm baseline: the same drain with ``publish_batch`` replaced by Celery's
   ``send_task`` per message on a ``confirm_publish=True`` connection (what the relay did before), and,
   for scale, the same without confirms (unsafe: a lost message would go unnoticed).
3. Latency at a steady insert rate: one ``publish()`` per transaction at a fixed rate; a kombu consumer
   (its own connection) measures commit -> consumed for each message, with the relay process
   (``listener.serve``: LISTEN/NOTIFY, in a thread), with the fast path (on_commit kick), and with
   neither; a "beat" thread calls ``relay_pending(using="payments")`` every second in all of them, as beat
   does. Then a probe of the relay process at low traffic: pairs of commits 3 ms apart.
4. django-celery-outbox (PyPI), configured as its README says (bench/dco_settings.py, bench/dco_app.py),
   in a subprocess: N rows written through its ``OutboxCelery.send_task`` inside ``transaction.atomic``,
   then its ``Relay`` run (its management command's defaults) until its table is empty.

Configurations are interleaved within each repetition, so background load falls on all of them alike;
compare them as ratios from the same run. Results: ``bench/results/<timestamp>-relay.json``, a chart at
``docs/relay-throughput.png`` (if matplotlib is importable). Databases and vhost are dropped at the end,
also on error or Ctrl-C, unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg2

from bench.common import (
    AMQP_URL,
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
)

log = logger("relay")

CHART = ROOT / "docs" / "relay-throughput.png"
ALIAS = "payments"
EVENT = "bench-event"
QUEUE = "payments"  # the queue the bench event is routed to; nothing consumes it in the bench vhost
HUGE = 10**9


class Progress:
    """A live progress line: rewritten in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.tty = sys.stdout.isatty()

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= (0.25 if self.tty else 5.0):
            self.last = now
            self.show()

    def show(self) -> None:
        elapsed = time.perf_counter() - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        line = f"[relay] {self.label}: {self.done}/{self.total} rows, {elapsed:6.1f} s, {rate:8.0f} rows/s"
        print(f"\r\033[K{line}" if self.tty else line, end="" if self.tty else "\n", flush=True)

    def finish(self) -> None:
        if self.tty:
            print("\r\033[K", end="", flush=True)


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1), "max": round(max(values), 1)}


# --- CPU accounting: who burnt the CPU during a drain ------------------------------------------------------------


def _proc_ticks(pid: str) -> tuple[str, str, int] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return comm, cmdline, int(fields[11]) + int(fields[12])  # utime + stime


def cpu_snapshot(dbnames: Sequence[str]) -> dict[str, Any]:
    """Cumulative CPU ticks per process (our PostgreSQL backends, RabbitMQ), this process, the machine."""
    procs: dict[str, tuple[str, int]] = {}
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        info = _proc_ticks(pid)
        if info is None:
            continue
        comm, cmdline, ticks = info
        if comm == "postgres" or cmdline.startswith("postgres"):
            ours = any(f" {name} " in f" {cmdline} " for name in dbnames)
            procs[pid] = ("postgres (our db)" if ours else "postgres (other)", ticks)
        elif comm.startswith("beam"):
            procs[pid] = ("rabbitmq", ticks)
    times = os.times()
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return {
        "procs": procs,
        "relay process": times.user + times.system,
        "machine busy": (sum(values[:8]) - values[3] - values[4]) / CLK_TCK,  # all but idle and iowait
    }


def cpu_delta(before: dict[str, Any], after: dict[str, Any], *, wall: float, rows: int) -> dict[str, Any]:
    """CPU seconds per group between two snapshots; a process that exited in between is lost (counted as other)."""
    used = {"relay process": 0.0, "postgres (our db)": 0.0, "rabbitmq": 0.0}
    for pid, (group, ticks) in after["procs"].items():
        if group in used:
            start = before["procs"].get(pid, (group, 0))[1]  # a process started in between: all of its ticks
            used[group] += max(0, ticks - start) / CLK_TCK
    used["relay process"] = after["relay process"] - before["relay process"]
    used["machine busy"] = after["machine busy"] - before["machine busy"]
    known = used["relay process"] + used["postgres (our db)"] + used["rabbitmq"]
    used["other processes"] = max(0.0, used["machine busy"] - known)  # the rest of PostgreSQL included
    used = {name: round(value, 3) for name, value in used.items()}
    return {
        "seconds": used,
        "cores": {name: round(v / wall, 2) for name, v in used.items()} if wall > 0 else {},
        "ms_per_row": {name: round(1000 * v / rows, 4) for name, v in used.items()} if rows else {},
    }


class WarningCounter:
    """Counts the warnings the outbox logs (a publish that failed) while a measurement runs."""

    def __enter__(self) -> WarningCounter:
        import logging

        self.records: list[str] = []
        counter = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                counter.records.append(record.getMessage()[:300])

        self.handler = Handler(level=logging.WARNING)
        self.logger = logging.getLogger("ticketing.outbox")
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)


# --- The world -----------------------------------------------------------------------------------------------------


class World:
    """Fresh databases and a vhost of its own; dropped by destroy()."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.dbs = {alias: f"benchrelay_{run}_{service}" for service, alias in SERVICES.items()}
        self.dco_db = f"benchrelay_{run}_dco"
        self.vhost = f"benchrelay_{run}"
        self.broker_url = f"{AMQP_URL}/{self.vhost}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"benchrelay_{run}_"))
        self.created_dbs: list[str] = []
        self.vhost_created = False

    def create(self, *, dco: bool) -> None:
        conn = psycopg2.connect(**PG, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in [*self.dbs.values(), *([self.dco_db] if dco else [])]:
                cur.execute(f'CREATE DATABASE "{name}"')
                self.created_dbs.append(name)
        conn.close()
        rabbitmqctl("add_vhost", self.vhost)
        self.vhost_created = True
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def environ(self) -> dict[str, str]:
        return {
            "ACCOUNTS_DATABASE_URL": f"{PG_URL}/{self.dbs['default']}",
            "CONCERTS_DATABASE_URL": f"{PG_URL}/{self.dbs['concerts']}",
            "PAYMENTS_DATABASE_URL": f"{PG_URL}/{self.dbs['payments']}",
            "CELERY_BROKER_URL": self.broker_url,
            "DEBUG": "0",
            "SECRET_KEY": f"bench-{secrets.token_urlsafe(32)}",
            "LOG_LEVEL": "WARNING",
            "TICKETING_VAR_DIR": str(self.tmp / "var"),
            "DJANGO_SETTINGS_MODULE": "ticketing.settings",
        }

    def reset_broker_state(self) -> None:
        """After a disturbed run: wait for the broker, drop this thread's publisher (it reconnects)."""
        from ticketing.outbox.broker import ConfirmingPublisher

        for _ in range(60):
            try:
                queue_purge(self.broker_url, QUEUE)
                queue_depth(self.broker_url, QUEUE)
                break
            except Exception:  # the broker is not back yet
                time.sleep(2)
        publisher = getattr(ConfirmingPublisher._local, "publisher", None)
        if publisher is not None:
            publisher.close()
        _unconfirmed.clear()
        with contextlib.suppress(Exception):
            from celery import current_app

            current_app.pool.force_close_all()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
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
        shutil.rmtree(self.tmp, ignore_errors=True)


def queue_depth(broker_url: str, queue: str) -> int:
    from kombu import Connection

    with Connection(broker_url) as conn:
        _, count, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
        return int(count)


def safe_queue_depth(broker_url: str, queue: str, expected: int) -> int:
    """The queue's depth once it reached ``expected`` or stopped growing for 2 s.

    Unconfirmed publishes may still be on their way into the queue when the relay returns; a relay
    with confirms has them all in the queue already.
    """
    try:
        depth, since, last = queue_depth(broker_url, queue), time.monotonic(), -1
        while depth < expected and time.monotonic() - since < 2:
            time.sleep(0.1)
            depth = queue_depth(broker_url, queue)
            if depth != last:
                since, last = time.monotonic(), depth
        return depth
    except Exception:  # the broker is away: the run will not verify
        return -1


def queue_purge(broker_url: str, queue: str) -> None:
    from kombu import Connection

    with Connection(broker_url) as conn, contextlib.suppress(Exception):  # not declared yet: nothing to purge
        conn.default_channel.queue_purge(queue)


# --- Our relay: setup, rows, drains ------------------------------------------------------------------------------


def django_setup(world: World) -> None:
    os.environ.update(world.environ())
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    import celery_app  # noqa: F401  (the project's Celery app, with its queues, becomes current_app)

    for alias in SERVICES.values():
        call_command("migrate", database=alias, interactive=False, verbosity=0)
    # Harness only: route the bench event to the payments queue, which nothing consumes here.
    settings.OUTBOX_EVENT_ROUTES = {**settings.OUTBOX_EVENT_ROUTES, EVENT: [QUEUE]}


def envelope_payload(i: int) -> dict[str, Any]:
    return {"reservation_id": i, "user_id": 100_000 + i, "amount": 1_000}


def reset_outbox() -> None:
    from django.db import connections

    from ticketing.outbox.models import OutboxMessage

    with connections[ALIAS].cursor() as cur:
        cur.execute(f"TRUNCATE {OutboxMessage._meta.db_table}")


def insert_rows(n: int, tag: str) -> None:
    """N pending rows, one saga (correlation id) each, then ANALYZE as autovacuum would soon do."""
    from django.db import connections
    from django.utils import timezone

    from ticketing.outbox.models import OutboxMessage

    now = timezone.now() - timedelta(seconds=1)
    rows = [
        OutboxMessage(
            event=EVENT,
            aggregate_id=str(i),
            correlation_id=f"{tag}-{i}",
            payload=envelope_payload(i),
            created_at=now,
            next_attempt_at=now,
        )
        for i in range(n)
    ]
    OutboxMessage.objects.using(ALIAS).bulk_create(rows, batch_size=2000)
    with connections[ALIAS].cursor() as cur:
        cur.execute(f"ANALYZE {OutboxMessage._meta.db_table}")


def insert_history(n: int) -> None:
    """N already-SENT rows below the pending ones, as the table holds them until retention deletes them."""
    from django.db import connections

    from ticketing.outbox.models import OutboxMessage

    table = OutboxMessage._meta.db_table
    with connections[ALIAS].cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} (event_id, event, aggregate_id, correlation_id, schema_version, payload, created_at,"
            " state, next_attempt_at, attempts, last_error, sent_at)"
            " SELECT gen_random_uuid(), %s, i::text, 'history-' || i, 1,"
            " jsonb_build_object('reservation_id', i, 'user_id', 100000 + i, 'amount', 1000),"
            " now() - interval '1 hour', 'SENT', now() - interval '1 hour', 0, '', now() - interval '1 hour'"
            " FROM generate_series(1, %s) AS i",
            [EVENT, n],
        )


PENDING_ID_INDEX = "outbox_pending_id_idx"  # ticketing/outbox migration 0004


def pending_id_index(*, present: bool) -> None:
    """The bench's experiment: the app's (id) WHERE state = 'PENDING' index dropped, or put back (bench db only)."""
    from django.db import connections

    from ticketing.outbox.models import OutboxMessage

    with connections[ALIAS].cursor() as cur:
        if present:
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS {PENDING_ID_INDEX} ON {OutboxMessage._meta.db_table} (id)"
                " WHERE state = 'PENDING'"
            )
        else:
            cur.execute(f"DROP INDEX IF EXISTS {PENDING_ID_INDEX}")


def vacuum_analyze() -> None:
    from django.db import connections

    from ticketing.outbox.models import OutboxMessage

    with connections[ALIAS].cursor() as cur:
        cur.execute(f"VACUUM ANALYZE {OutboxMessage._meta.db_table}")


def outbox_states() -> dict[str, int]:
    from django.db.models import Count

    from ticketing.outbox.models import OutboxMessage

    rows = OutboxMessage.objects.using(ALIAS).values("state").annotate(n=Count("id")).order_by()
    return {row["state"]: row["n"] for row in rows}


def per_message_send_task(*, confirm: bool) -> Callable[..., list[str | None]]:
    """The old relay: one Celery ``send_task`` per message (with confirm_publish, one round trip each)."""
    from celery import current_app

    def publish(messages: Sequence[Any], **_: Any) -> list[str | None]:
        if confirm:  # the app's pool: CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
            with current_app.producer_or_acquire() as producer:
                for m in messages:
                    current_app.send_task(
                        f"{m.queue}.handle_event", args=[m.envelope], queue=m.queue, headers=m.headers,
                        producer=producer,
                    )  # fmt: skip
        else:
            producer = unconfirmed_producer()
            for m in messages:
                current_app.send_task(
                    f"{m.queue}.handle_event", args=[m.envelope], queue=m.queue, headers=m.headers, producer=producer
                )
        return [None] * len(messages)

    return publish


_unconfirmed: dict[str, Any] = {}


def unconfirmed_producer() -> Any:
    if "producer" not in _unconfirmed:
        from celery import current_app

        conn = current_app.connection_for_write(transport_options={"confirm_publish": False})
        _unconfirmed["producer"] = current_app.amqp.Producer(conn)
    return _unconfirmed["producer"]


CONFIGS: dict[str, dict[str, Any]] = {
    # name -> how to drain
    "ours B=1": {"kind": "ours", "batch": 1},
    "ours B=10": {"kind": "ours", "batch": 10},
    "ours B=100": {"kind": "ours", "batch": 100},
    "ours B=500": {"kind": "ours", "batch": 500},
    "ours B=100 +200k SENT rows": {"kind": "ours", "batch": 100, "history": 200_000},
    # An experiment on the bench database: without the pending-id index of migration 0004.
    "ours B=100 +200k SENT -pending-id index": {"kind": "ours", "batch": 100, "history": 200_000, "no_index": 1},
    "send_task+confirm B=100": {"kind": "send_task", "batch": 100, "confirm": True},
    "send_task no confirm B=100": {"kind": "send_task", "batch": 100, "confirm": False},
    "dco default": {"kind": "dco", "env": {}},
    "dco confirm_publish": {"kind": "dco", "env": {"DCO_CONFIRM_PUBLISH": "1"}},
    "dco metrics off": {"kind": "dco", "env": {"DCO_METRICS": "0"}},
    "dco confirm+metrics off": {"kind": "dco", "env": {"DCO_CONFIRM_PUBLISH": "1", "DCO_METRICS": "0"}},
}


def drain_ours(world: World, name: str, config: dict[str, Any], rows: int, label: str) -> dict[str, Any]:
    from django.db import connections

    import ticketing.outbox.relay as relay_module

    reset_outbox()
    queue_purge(world.broker_url, QUEUE)
    history = config.get("history", 0)
    pending_id_index(present=not config.get("no_index"))
    if history:
        insert_history(history)
    insert_rows(rows, tag=f"{label}-{secrets.token_hex(3)}")
    if history:
        vacuum_analyze()
    connections[ALIAS].close()  # every drain starts on a fresh connection, as a new relay process would
    progress = Progress(f"{label} {name}", rows)
    original_rows, original_batch = relay_module.publish_claim, relay_module.publish_batch

    def counted(claim: Any) -> int:
        sent = original_rows(claim)
        progress.add(sent)
        return sent

    relay_module.publish_claim = counted
    if config["kind"] == "send_task":
        relay_module.publish_batch = per_message_send_task(confirm=config["confirm"])
    try:
        with WarningCounter() as warnings:
            before = cpu_snapshot(list(world.dbs.values()))
            t0 = time.perf_counter()
            sent = relay_module.relay_pending(using=ALIAS, max_batches=HUGE, batch_size=config["batch"])
            wall = time.perf_counter() - t0
            after = cpu_snapshot(list(world.dbs.values()))
    finally:
        relay_module.publish_claim, relay_module.publish_batch = original_rows, original_batch
        progress.finish()
    if config.get("no_index"):
        pending_id_index(present=True)
    states = outbox_states()
    depth = safe_queue_depth(world.broker_url, QUEUE, rows)
    ok = sent == rows and states == {"SENT": rows + history} and depth == rows
    return {
        "config": name,
        "rows": rows,
        "sent": sent,
        "wall_s": round(wall, 3),
        "rows_per_s": round(rows / wall, 1),
        "states": states,
        "queue_depth": depth,
        "verified": ok,
        "publish_failures": len(warnings.records),
        "first_failure": warnings.records[0] if warnings.records else None,
        "cpu": cpu_delta(before, after, wall=wall, rows=rows),
        "loadavg": os.getloadavg(),
    }


def explain_claims(world: World, rows: int) -> dict[str, str]:
    """EXPLAIN ANALYZE of the claim query at a full backlog, and with most of the backlog already SENT."""
    from django.db import connections, transaction
    from django.test.utils import CaptureQueriesContext

    from ticketing.outbox.models import OutboxMessage
    from ticketing.outbox.relay import claim_due_rows

    def plan(limit: int) -> str:
        conn = connections[ALIAS]
        with transaction.atomic(using=ALIAS):
            with CaptureQueriesContext(conn) as captured:
                claim_due_rows(using=ALIAS, limit=limit)
            transaction.set_rollback(True, using=ALIAS)
        # The claim: one WITH ... UPDATE on PostgreSQL (explained inside a rolled-back transaction).
        claim = ("SELECT", "WITH")
        select = next(q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(claim))
        with transaction.atomic(using=ALIAS), conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + select)
            text = "\n".join(r[0] for r in cur.fetchall())
            transaction.set_rollback(True, using=ALIAS)
        return text

    reset_outbox()
    insert_rows(rows, tag="explain")
    plans = {f"{rows} pending, limit 1": plan(1), f"{rows} pending, limit 100": plan(100)}
    keep = max(1, rows // 20)
    ids = list(OutboxMessage.objects.using(ALIAS).order_by("id").values_list("id", flat=True)[: rows - keep])
    OutboxMessage.objects.using(ALIAS).filter(id__in=ids).update(state="SENT")
    plans[f"{rows - keep} sent + {keep} pending (not vacuumed), limit 100"] = plan(100)
    vacuum_analyze()
    plans[f"{rows - keep} sent + {keep} pending (VACUUM ANALYZE), limit 100"] = plan(100)
    reset_outbox()
    insert_history(200_000)
    insert_rows(rows, tag="explain-history")
    vacuum_analyze()
    plans[f"200000 sent + {rows} pending (VACUUM ANALYZE), limit 100"] = plan(100)
    pending_id_index(present=False)
    vacuum_analyze()
    plans[f"200000 sent + {rows} pending (VACUUM ANALYZE), without the pending-id index, limit 100"] = plan(100)
    pending_id_index(present=True)
    reset_outbox()
    return plans


# --- Latency at a steady rate ------------------------------------------------------------------------------------


def note_commit(committed: dict[str, float], key: str) -> None:
    committed[key] = time.time()


class StopRelay(Exception):
    pass


def latency_run(
    world: World,
    *,
    fast_path: bool,
    rate: float,
    duration: float,
    label: str,
    history: int = 0,
    relay_process: bool = False,
) -> dict[str, Any]:
    from celery import current_app
    from django.conf import settings
    from django.db import connections, transaction
    from kombu import Connection, Consumer

    from ticketing.outbox.publish import publish
    from ticketing.outbox.relay import relay_pending

    reset_outbox()
    queue_purge(world.broker_url, QUEUE)
    if history:
        insert_history(history)
        vacuum_analyze()
    fast_path_setting = settings.OUTBOX_FAST_PATH
    settings.OUTBOX_FAST_PATH = fast_path
    total = int(rate * duration)
    tag = f"lat-{secrets.token_hex(3)}"
    committed: dict[str, float] = {}
    consumed: dict[str, float] = {}
    occurred: dict[str, float] = {}
    txn_seconds: list[float] = []
    behind: list[float] = []
    stop = threading.Event()
    ready = threading.Event()
    errors: list[BaseException] = []

    def consumer() -> None:
        try:
            queue = current_app.amqp.queues[QUEUE]
            with Connection(world.broker_url) as conn:

                def on_message(body: Any, message: Any) -> None:
                    now = time.time()
                    envelope = body[0][0]
                    key = envelope["correlation_id"]
                    consumed[key] = now
                    occurred[key] = datetime.fromisoformat(envelope["occurred_at"]).timestamp()

                with Consumer(conn, queues=[queue], callbacks=[on_message], accept=["json"], no_ack=True):
                    ready.set()
                    while not stop.is_set():
                        try:
                            conn.drain_events(timeout=0.2)
                        except TimeoutError:
                            pass
                        except OSError:  # the broker went away: this run will not verify
                            time.sleep(0.2)
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    def beat() -> None:
        try:
            while not stop.wait(1.0):
                relay_pending(using=ALIAS)  # the beat task's call: default max_batches and batch size
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def inserter() -> None:
        try:
            t0 = time.perf_counter()
            for i in range(total):
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    behind.append(-delay)
                key = f"{tag}-{i}"
                start = time.perf_counter()
                with transaction.atomic(using=ALIAS):
                    # Registered before publish(), so it runs first on commit: the commit time.
                    transaction.on_commit(partial(note_commit, committed, key), using=ALIAS)
                    publish(EVENT, envelope_payload(i), using=ALIAS, aggregate_id=i, correlation_id=key)
                txn_seconds.append(time.perf_counter() - start)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def relay_process_thread() -> None:
        """``manage.py relay``'s loop (LISTEN/NOTIFY, the gather delay of the settings), stopped by the harness."""
        import ticketing.outbox.listener as listener

        real = listener.relay_pending

        def relay_or_stop(**kwargs: Any) -> int:
            if stop.is_set():
                raise StopRelay
            return real(**kwargs)

        listener.relay_pending = relay_or_stop
        try:
            listener.serve(
                [ALIAS], idle_seconds=1.0, poll_seconds=0.05, gather_seconds=settings.OUTBOX_RELAY_GATHER_SECONDS
            )
        except StopRelay:
            pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            listener.relay_pending = real
            connections.close_all()

    threads = [threading.Thread(target=consumer, daemon=True), threading.Thread(target=beat, daemon=True)]
    if relay_process:
        threads.append(threading.Thread(target=relay_process_thread, daemon=True))
    threads[0].start()
    ready.wait(10)
    for thread in threads[1:]:
        thread.start()
    warnings = WarningCounter().__enter__()
    before = cpu_snapshot(list(world.dbs.values()))
    t0 = time.perf_counter()
    writer = threading.Thread(target=inserter, daemon=True)
    writer.start()
    while writer.is_alive():
        writer.join(timeout=5 if not sys.stdout.isatty() else 0.25)
        line = f"[relay] {label}: {len(committed)}/{total} committed, {len(consumed)} consumed"
        print(f"\r\033[K{line}" if sys.stdout.isatty() else line, end="" if sys.stdout.isatty() else "\n", flush=True)
    insert_wall = time.perf_counter() - t0
    deadline = time.monotonic() + 15
    while len(consumed) < total and time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    after = cpu_snapshot(list(world.dbs.values()))
    stop.set()
    for thread in threads:
        thread.join(timeout=5)  # the relay process notices the stop within its idle second
    if sys.stdout.isatty():
        print("\r\033[K", end="", flush=True)
    settings.OUTBOX_FAST_PATH = fast_path_setting
    warnings.__exit__()
    commit_to_consume = [consumed[k] - committed[k] for k in consumed if k in committed]
    created_to_consume = [consumed[k] - occurred[k] for k in consumed]
    return {
        "mode": latency_name(fast_path, relay_process, history),
        "fast_path": fast_path,
        "relay_process": relay_process,
        "history_sent_rows": history,
        "rate": rate,
        "duration_s": duration,
        "sent": total,
        "consumed": len(consumed),
        "achieved_rate": round(total / insert_wall, 1),
        "inserter_behind_schedule": {"times": len(behind), "max_ms": round(max(behind, default=0) * 1000, 1)},
        "commit_to_consumed_ms": percentiles(commit_to_consume),
        "created_to_consumed_ms": percentiles(created_to_consume),
        "transaction_incl_on_commit_ms": percentiles(txn_seconds),
        "states": outbox_states(),
        "verified": not errors and not warnings.records and len(consumed) == total,
        "error": repr(errors[0]) if errors else None,
        "publish_failures": len(warnings.records),
        "cpu": cpu_delta(before, after, wall=insert_wall, rows=total),
        "loadavg": os.getloadavg(),
    }


def notify_probe(world: World, *, pairs: int = 10, gap: float = 0.003, quiet: float = 1.3) -> dict[str, Any]:
    """The relay process at low traffic: pairs of commits ``gap`` apart, then ``quiet`` seconds of nothing.

    The second commit of a pair tends to land while the relay drains the first one; its NOTIFY then
    arrives while the relay's own queries run on the LISTENing connection.
    """
    from celery import current_app
    from django.conf import settings
    from django.db import connections, transaction
    from kombu import Connection, Consumer

    import ticketing.outbox.listener as listener
    from ticketing.outbox.publish import publish

    reset_outbox()
    queue_purge(world.broker_url, QUEUE)
    fast_path_setting = settings.OUTBOX_FAST_PATH
    settings.OUTBOX_FAST_PATH = False
    stop = threading.Event()
    committed: dict[str, float] = {}
    consumed: dict[str, float] = {}
    real = listener.relay_pending

    def consumer() -> None:
        with Connection(world.broker_url) as conn:

            def on_message(body: Any, message: Any) -> None:
                consumed[body[0][0]["correlation_id"]] = time.time()

            queue = current_app.amqp.queues[QUEUE]
            with Consumer(conn, queues=[queue], callbacks=[on_message], accept=["json"], no_ack=True):
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.2)

    def relay_or_stop(**kwargs: Any) -> int:
        if stop.is_set():
            raise StopRelay
        return real(**kwargs)

    def relay() -> None:
        try:
            listener.serve(
                [ALIAS], idle_seconds=1.0, poll_seconds=0.05, gather_seconds=settings.OUTBOX_RELAY_GATHER_SECONDS
            )
        except StopRelay:
            pass
        finally:
            connections.close_all()

    def commit(key: str) -> None:
        with transaction.atomic(using=ALIAS):
            transaction.on_commit(lambda: committed.__setitem__(key, time.time()), using=ALIAS)
            publish(EVENT, {"probe": key}, using=ALIAS, aggregate_id=1, correlation_id=key)

    listener.relay_pending = relay_or_stop
    threads = [threading.Thread(target=consumer, daemon=True), threading.Thread(target=relay, daemon=True)]
    try:
        threads[0].start()
        time.sleep(0.5)
        threads[1].start()
        time.sleep(1.5)
        for i in range(pairs):
            commit(f"first-{i}")
            time.sleep(gap)
            commit(f"second-{i}")
            time.sleep(quiet)
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        listener.relay_pending = real
        settings.OUTBOX_FAST_PATH = fast_path_setting
        connections.close_all()

    def lat(prefix: str) -> list[float]:
        return [consumed[k] - committed[k] for k in committed if k.startswith(prefix) and k in consumed]

    return {
        "pairs": pairs,
        "gap_s": gap,
        "quiet_s": quiet,
        "first_commit_to_consumed_ms": percentiles(lat("first-")),
        "second_commit_to_consumed_ms": percentiles(lat("second-")),
        "second_over_500ms": sum(1 for v in lat("second-") if v > 0.5),
        "lost": 2 * pairs - len(consumed),
    }


# --- django-celery-outbox, in a subprocess with its own settings -------------------------------------------------


def drain_dco(world: World, name: str, config: dict[str, Any], rows: int, label: str) -> dict[str, Any]:
    out = world.tmp / f"dco-{secrets.token_hex(4)}.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")},
        "DJANGO_SETTINGS_MODULE": "bench.dco_settings",
        "DCO_DATABASE_URL": f"{PG_URL}/{world.dco_db}",
        "CELERY_BROKER_URL": world.broker_url,
        "BENCH_DBNAMES": world.dco_db,
        **config["env"],
    }
    argv = [PYTHON, "-m", "bench.relay", "--internal-dco", str(out), "--rows", str(rows), "--label", f"{label} {name}"]
    logfile = world.tmp / "dco-relay.log"  # the package's structlog lines (one per batch) go here
    with open(logfile, "a") as f:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        progress_at = 0.0
        started = time.monotonic()
        while proc.poll() is None:
            if time.monotonic() - started > 900:
                proc.terminate()
                proc.wait(30)
                break
            time.sleep(0.2)
            status = world.tmp / f"{out.name}.progress"
            if status.exists() and time.monotonic() - progress_at > (0.25 if sys.stdout.isatty() else 5):
                progress_at = time.monotonic()
                line = f"[relay] {label} {name}: {status.read_text().strip()}"
                print(f"\r\033[K{line}" if sys.stdout.isatty() else line, end="" if sys.stdout.isatty() else "\n")
    if sys.stdout.isatty():
        print("\r\033[K", end="", flush=True)
    if proc.returncode != 0 or not out.exists():
        tail = logfile.read_text()[-3000:]
        log(f"django-celery-outbox run failed ({proc.returncode}):\n{tail[-1500:]}")
        return {"config": name, "rows": rows, "verified": False, "error": tail[-1500:], "rows_per_s": None}
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    result["config"] = name
    return result


def count_rows(model: Any) -> int:
    """Rows of one of the package's models (typed or not, depending on what is installed)."""
    return int(model.objects.count())


def internal_dco(args: argparse.Namespace) -> int:
    """The subprocess: DJANGO_SETTINGS_MODULE=bench.dco_settings; one drain; the result as JSON."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django_celery_outbox._settings import load_stale_timeout_seconds_setting
    from django_celery_outbox.models import CeleryOutbox, CeleryOutboxDeadLetter
    from django_celery_outbox.relay import Relay, RelayConfig
    from django_celery_outbox.relay._message_selector import MessageSelector

    from bench.dco_app import QUEUE as DCO_QUEUE
    from bench.dco_app import app, handle_event

    call_command("migrate", interactive=False, verbosity=0)
    broker_url = os.environ["CELERY_BROKER_URL"]
    progress_file = Path(str(args.internal_dco) + ".progress")
    with connection.cursor() as cur:
        cur.execute("TRUNCATE celery_outbox, celery_outbox_dead_letter")
    queue_purge(broker_url, DCO_QUEUE)

    # Rows through the package's own API: the outbox-enabled send inside a transaction, 1,000 per commit.
    t0 = time.perf_counter()
    tag = secrets.token_hex(3)
    for start in range(0, args.rows, 1000):
        with transaction.atomic():
            for i in range(start, min(args.rows, start + 1000)):
                envelope = {
                    "event_id": str(uuid.uuid4()),
                    "event": EVENT,
                    "schema_version": 1,
                    "occurred_at": datetime.now().astimezone().isoformat(),
                    "aggregate_id": str(i),
                    "correlation_id": f"{tag}-{i}",
                    "causation_id": None,
                    "payload": envelope_payload(i),
                }
                handle_event.apply_async(args=[envelope], queue=DCO_QUEUE)
        progress_file.write_text(f"inserted {min(args.rows, start + 1000)}/{args.rows} rows")
    insert_s = time.perf_counter() - t0
    pending = count_rows(CeleryOutbox)
    with connection.cursor() as cur:
        cur.execute("ANALYZE celery_outbox")
    connection.close()

    class CountingSelector(MessageSelector):
        selected = 0

        def run(self) -> list[CeleryOutbox]:
            messages = super().run()
            CountingSelector.selected += len(messages)
            return messages

    # Its management command's defaults (batch 100, idle 1 s, one publishing thread, ...).
    config = RelayConfig.init(stale_timeout_seconds=load_stale_timeout_seconds_setting())
    stale = timedelta(seconds=config.stale_timeout_seconds)
    selector = CountingSelector(batch_size=config.batch_size, stale_timeout=stale)
    relay = Relay(app=app, config=config, selector=selector)
    relay._setup_delayed_delivery()  # what Relay.start() does first, outside the timing
    dbnames = os.environ["BENCH_DBNAMES"].split(",")
    last = 0.0
    before = cpu_snapshot(dbnames)
    t0 = time.perf_counter()
    # Relay.start()'s loop without its signal handlers. N is a multiple of the batch size, so no
    # batch comes back short and the relay never sleeps its idle time while rows are left.
    while CountingSelector.selected < args.rows:
        relay._processing()
        if time.perf_counter() - last > 1:
            last = time.perf_counter()
            elapsed = last - t0
            progress_file.write_text(
                f"{CountingSelector.selected}/{args.rows} rows, {elapsed:6.1f} s, "
                f"{CountingSelector.selected / elapsed:8.0f} rows/s"
            )
    wall = time.perf_counter() - t0
    after = cpu_snapshot(dbnames)
    left = count_rows(CeleryOutbox)
    depth = safe_queue_depth(broker_url, DCO_QUEUE, args.rows)
    result = {
        "rows": args.rows,
        "pending_before": pending,
        "insert_s": round(insert_s, 2),
        "insert_rows_per_s": round(args.rows / insert_s, 1),
        "wall_s": round(wall, 3),
        "rows_per_s": round(args.rows / wall, 1),
        "left_in_outbox": left,
        "dead_letters": count_rows(CeleryOutboxDeadLetter),
        "queue_depth": depth,
        "verified": pending == args.rows and left == 0 and depth == args.rows,
        "settings": {
            "broker_transport_options": dict(app.conf.broker_transport_options or {}),
            "MONITORING_METRICS_ENABLED": os.environ.get("DCO_METRICS", "1") != "0",
            "relay_config": {k: str(v) for k, v in vars(config).items()},
        },
        "cpu": cpu_delta(before, after, wall=wall, rows=args.rows),
        "loadavg": os.getloadavg(),
    }
    queue_purge(broker_url, DCO_QUEUE)
    Path(args.internal_dco).write_text(json.dumps(result))
    progress_file.unlink(missing_ok=True)
    return 0


# --- Profile ---------------------------------------------------------------------------------------------------------


def profile_drain(world: World, rows: int, batch: int, stamp: str) -> dict[str, Any]:
    from pyinstrument import Profiler

    import ticketing.outbox.relay as relay_module

    reset_outbox()
    queue_purge(world.broker_url, QUEUE)
    insert_rows(rows, tag=f"profile-{secrets.token_hex(3)}")
    profiler = Profiler(interval=0.0005)
    profiler.start()
    t0 = time.perf_counter()
    relay_module.relay_pending(using=ALIAS, max_batches=HUGE, batch_size=batch)
    wall = time.perf_counter() - t0
    profiler.stop()
    path = RESULTS / f"{stamp}-relay-profile-B{batch}.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    path.with_suffix(".all.txt").write_text(profiler.output_text(unicode=False, color=False, show_all=True))
    queue_purge(world.broker_url, QUEUE)
    return {"rows": rows, "batch": batch, "wall_s_profiled": round(wall, 3), "file": str(path.relative_to(ROOT))}


# --- Reporting -------------------------------------------------------------------------------------------------------


def code_fingerprint() -> dict[str, Any]:
    """What relay code was measured: the outbox app's files (the tree changes while benchmarks run)."""
    import hashlib

    files = [*sorted((ROOT / "ticketing" / "outbox").rglob("*.py")), ROOT / "ticketing" / "settings.py"]
    digest = hashlib.sha256()
    listing = {}
    for path in files:
        data = path.read_bytes()
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + data)
        listing[str(path.relative_to(ROOT))] = {
            "sha256": hashlib.sha256(data).hexdigest()[:12],
            "mtime": datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds"),
        }
    return {"sha256": digest.hexdigest()[:16], "files": listing}


def summarize(reps: list[dict[str, Any]], reference: str) -> dict[str, Any]:
    by_config: dict[str, list[dict[str, Any]]] = {}
    discarded: dict[str, int] = {}
    for r in reps:
        if not r["verified"]:
            discarded[r["config"]] = discarded.get(r["config"], 0) + 1
            continue
        by_config.setdefault(r["config"], []).append(r)
    ref = statistics.median(r["rows_per_s"] for r in by_config.get(reference, [])) if reference in by_config else None
    summary = {}
    for name, runs in by_config.items():
        rates = [r["rows_per_s"] for r in runs]
        median = statistics.median(rates)
        cpu_ms = {}
        for group in runs[0]["cpu"]["ms_per_row"]:
            cpu_ms[group] = round(statistics.median(r["cpu"]["ms_per_row"][group] for r in runs), 4)
        summary[name] = {
            "rows_per_s": spread(rates),
            "ratio_to_ours_B100": round(median / ref, 3) if ref else None,
            "discarded_runs": discarded.get(name, 0),
            "runs": len(runs),
            "cpu_ms_per_row_median": cpu_ms,
            "relay_cpu_utilisation": round(
                statistics.median(r["cpu"]["cores"].get("relay process", 0) for r in runs), 2
            ),
        }
    return summary


# (fast path, relay process, SENT rows in the table); beat's 1 s relay runs in every one.
LATENCY_CONFIGS = [(False, True, 0), (True, False, 0), (False, False, 0), (False, True, 200_000)]


def latency_name(fast: bool, relay_process: bool, history: int) -> str:
    parts = ["relay process (NOTIFY)" if relay_process else "", "fast path" if fast else ""]
    name = " + ".join(p for p in parts if p) or "beat's 1 s relay only"
    return name + (f", {history // 1000}k SENT rows in the table" if history else "")


def summarize_latency(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for fast, relay_process, history in LATENCY_CONFIGS:
        name = latency_name(fast, relay_process, history)
        mine = [r for r in runs if r["verified"] and r["mode"] == name]
        if not mine:
            continue
        entry: dict[str, Any] = {"runs": len(mine)}
        for metric in ("commit_to_consumed_ms", "created_to_consumed_ms", "transaction_incl_on_commit_ms"):
            values = {p: [r[metric][p] for r in mine if r[metric][p] is not None] for p in ("p50", "p95", "p99", "max")}
            entry[metric] = {p: spread(v) for p, v in values.items() if v}
        entry["discarded_runs"] = sum(1 for r in runs if not r["verified"] and r["mode"] == name)
        entry["achieved_rate"] = spread([r["achieved_rate"] for r in mine])
        out[name] = entry
    return out


def chart(summary: dict[str, Any], path: Path, note: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(summary)
    medians = [summary[n]["rows_per_s"]["median"] for n in names]
    lows = [summary[n]["rows_per_s"]["median"] - summary[n]["rows_per_s"]["min"] for n in names]
    highs = [summary[n]["rows_per_s"]["max"] - summary[n]["rows_per_s"]["median"] for n in names]
    palette = {"ours": "#2b6cb0", "send_task": "#dd6b20"}
    colors = [palette.get(n.split()[0].split("+")[0], "#718096") for n in names]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    bars = ax.barh(names, medians, xerr=[lows, highs], color=colors, capsize=3)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("confirmed publishes per second (median, min-max whiskers; log scale)")
    ax.set_title("Outbox relay drain throughput")
    for bar, value, high in zip(bars, medians, highs, strict=True):
        ax.text((value + high) * 1.08, bar.get_y() + bar.get_height() / 2, f"{value:,.0f}", va="center", fontsize=9)
    ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="#4a5568")
    ax.set_xlim(right=max(medians) * 4)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(ROOT))


# --- Main -----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="pending rows per drain (a multiple of 500)")
    parser.add_argument("--rows-b1", type=int, default=0, help="rows for the B=1 drain (default: --rows)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from: {', '.join(CONFIGS)}")
    parser.add_argument("--latency-rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--latency-duration", type=float, default=20.0, help="seconds per latency run")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile one B=100 and one B=1 drain (pyinstrument)")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the vhost")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/<timestamp>-relay.json)")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--chart-from", type=Path, help="only draw docs/relay-throughput.png from a result file")
    parser.add_argument("--internal-dco", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.internal_dco:
        unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
        if unknown:
            parser.error(f"unknown configuration(s): {unknown}")
        if args.rows % 500:
            parser.error("--rows must be a multiple of 500 (so that no drain ends on a short batch)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.internal_dco:
        return internal_dco(args)
    if args.chart_from:
        saved = json.loads(args.chart_from.read_text())
        cfg = saved["config"]
        note = f"{saved['machine']['nproc']} cores, {cfg['rows']} rows per drain, {cfg['repeat']} runs"
        note += f", run {saved['run']}"
        log(f"chart: {chart(saved['summary'], CHART, note) or 'matplotlib not importable'}")
        return 0

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run = secrets.token_hex(4)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    configs = args.configs.split(",")
    world = World(run)
    result: dict[str, Any] = {
        "command": " ".join([".venv/bin/python -m bench.relay", *(argv if argv is not None else sys.argv[1:])]),
        "run": run,
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "internal_dco"},
        "machine": machine_info([*PACKAGES, "django-celery-outbox", "matplotlib"]),
        "code": code_fingerprint(),
        "loadavg_at_start": os.getloadavg(),
        "throughput": [],
        "latency": [],
        "status": "FAILED",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"{stamp}-relay.json"
    try:
        need_dco = any(CONFIGS[c]["kind"] == "dco" for c in configs)
        log(f"run {run}: databases {', '.join(world.dbs.values())}, vhost {world.vhost}; migrating")
        world.create(dco=need_dco)
        django_setup(world)
        if not args.no_explain:
            result["claim_query_plans"] = explain_claims(world, args.rows)
        # Warm-up: connections, queue declaration, imports.
        drain_ours(world, "warm-up", {"kind": "ours", "batch": 100}, 1000, "warm-up")
        for rep in range(1, args.repeat + 1):
            for name in configs:
                config = CONFIGS[name]
                label = f"rep {rep}/{args.repeat}"
                rows = args.rows_b1 if (config.get("batch") == 1 and args.rows_b1) else args.rows
                for attempt in range(1, 4):  # a run disturbed (the broker stopped, say) is done again
                    if config["kind"] == "dco":
                        r = drain_dco(world, name, config, rows, label)
                    else:
                        r = drain_ours(world, name, config, rows, label)
                    r["rep"], r["attempt"] = rep, attempt
                    result["throughput"].append(r)
                    if r["verified"]:
                        cpu = r["cpu"]["ms_per_row"]
                        log(
                            f"{label} {name:<28} {r['rows_per_s']:>9,.0f} rows/s  {r['wall_s']:7.2f} s  ok  CPU "
                            f"ms/row: relay {cpu['relay process']:.3f} pg {cpu['postgres (our db)']:.3f} "
                            f"rabbit {cpu['rabbitmq']:.3f} other {cpu['other processes']:.3f}  "
                            f"load {r['loadavg'][0]:.2f}"
                        )
                        break
                    log(f"{label} {name}: NOT VERIFIED (discarded, done again): {json.dumps(r, default=str)[:600]}")
                    world.reset_broker_state()
            if not args.no_latency:
                for fast, relay_process, history in LATENCY_CONFIGS:
                    label = f"rep {rep}/{args.repeat} latency {latency_name(fast, relay_process, history)}"
                    for attempt in range(1, 4):
                        r = latency_run(
                            world,
                            fast_path=fast,
                            rate=args.latency_rate,
                            duration=args.latency_duration,
                            label=label,
                            history=history,
                            relay_process=relay_process,
                        )
                        r["rep"], r["attempt"] = rep, attempt
                        result["latency"].append(r)
                        if r["verified"]:
                            break
                        log(f"{label}: NOT VERIFIED (discarded, done again): {r['error']} {r['publish_failures']}")
                        world.reset_broker_state()
                    c, t = r["commit_to_consumed_ms"], r["transaction_incl_on_commit_ms"]
                    log(
                        f"{label}: {r['consumed']}/{r['sent']} consumed at {r['achieved_rate']}/s; commit->consumed "
                        f"p50 {c['p50']} p95 {c['p95']} p99 {c['p99']} max {c['max']} ms; transaction p50 "
                        f"{t['p50']} p99 {t['p99']} ms"
                    )
        if not args.no_latency:
            probe = result["notify_probe"] = notify_probe(world)
            log(
                f"relay process, pairs of commits {probe['gap_s'] * 1000:.0f} ms apart: second commit -> consumed "
                f"{probe['second_commit_to_consumed_ms']}; {probe['second_over_500ms']}/{probe['pairs']} over 500 ms"
            )
        result["summary"] = summarize(result["throughput"], "ours B=100")
        result["latency_summary"] = summarize_latency(result["latency"])
        if args.profile:
            result["profiles"] = [
                profile_drain(world, args.rows, 100, stamp),
                profile_drain(world, args.rows_b1 or args.rows // 4, 1, stamp),
            ]
        result["loadavg_at_end"] = os.getloadavg()
        if code_fingerprint()["sha256"] != result["code"]["sha256"]:
            result["code_changed_during_run"] = code_fingerprint()
            log("the outbox code changed while this ran: see code_changed_during_run")
        result["status"] = "OK"
        if not args.no_chart:
            note = f"{result['machine']['nproc']} cores, {args.rows} rows per drain, {args.repeat} runs, run {run}"
            result["chart"] = chart(result["summary"], CHART, note) or "matplotlib not importable: no chart"
    except KeyboardInterrupt:
        result["status"] = "INTERRUPTED"
        log("interrupted")
    finally:
        result["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
        out.write_text(json.dumps(result, indent=2, default=str))
        if args.keep:
            log(f"kept databases {', '.join(world.created_dbs)} and vhost {world.vhost}")
        else:
            world.destroy()
            log("dropped the databases and the vhost")
    print_summary(result)
    log(f"result: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if result["status"] == "OK" else 1


def print_summary(result: dict[str, Any]) -> None:
    summary = result.get("summary")
    if not summary:
        return
    print(f"\n{'configuration':<28} {'median rows/s':>14} {'min-max':>20} {'x ours B=100':>13}  relay CPU cores")
    for name, s in summary.items():
        r = s["rows_per_s"]
        span = f"{r['min']:,.0f}-{r['max']:,.0f}"
        print(
            f"{name:<28} {r['median']:>14,.0f} {span:>20} "
            f"{s['ratio_to_ours_B100'] or 0:>13.3f}  {s['relay_cpu_utilisation']}"
        )
    for name, s in result.get("latency_summary", {}).items():
        c = s["commit_to_consumed_ms"]
        print(
            f"{name}: commit->consumed ms p50 {c['p50']['median']} p95 {c['p95']['median']} "
            f"p99 {c['p99']['median']} max {c['max']['median']} (medians of {s['runs']} runs)"
        )


if __name__ == "__main__":
    sys.exit(main())
