"""``--mode relay``: the relay alone, from ``--rows`` pending rows to confirmed publishes, nothing consuming.

Configurations: ours at batch sizes 1 to 500; the same claim with one confirmed ``send_task`` per message;
django-celery-outbox's ``Relay`` in a subprocess. Every row must end SENT, one message per row queued.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg2

from bench.common import (
    PYTHON,
    ROOT,
    CpuSampler,
    Progress,
    World,
    bar_chart,
    interruptible,
    log,
    new_result,
    spread,
    write_result,
)

ALIAS = "payments"
EVENT = "bench-event"
QUEUE = "payments"  # nothing consumes it while the relay is measured
CONFIGS = ["ours B=1", "ours B=10", "ours B=100", "ours B=500", "send_task+confirm B=100", "dco"]


def envelope(i: int, tag: str) -> dict[str, Any]:
    payload = {"reservation_id": i, "user_id": 100_000 + i, "amount": 1_000}
    when = datetime.now().astimezone().isoformat()
    ids = {"event_id": str(uuid.uuid4()), "aggregate_id": str(i), "correlation_id": f"{tag}-{i}", "causation_id": None}
    return {"event": EVENT, "schema_version": 1, "occurred_at": when, **ids, "payload": payload}


def queue_depth(broker_url: str, *, purge: bool = False) -> int:
    """Messages in the queue (0 if it was never declared), after emptying it if ``purge``."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(broker_url) as conn:
        try:
            if purge:
                conn.default_channel.queue_purge(QUEUE)
            return int(conn.default_channel.queue_declare(queue=QUEUE, passive=True)[1])
        except NotFound:
            return 0


def settled_depth(broker_url: str, expected: int) -> int:
    """The queue's depth once it reached ``expected`` or stopped growing for 2 s."""
    depth, since = queue_depth(broker_url), time.monotonic()
    while depth < expected and time.monotonic() - since < 2:
        time.sleep(0.1)
        if (now := queue_depth(broker_url)) != depth:
            depth, since = now, time.monotonic()
    return depth


def timed_drain(label: str, rows: int, left: Callable[[], int], drain: Callable[[], Any], run: str) -> dict[str, Any]:
    """Run ``drain`` with a progress line (from ``left``, read in another thread) and the CPU it took."""
    sampler = CpuSampler({os.getpid(): "relay"}, marker=f"{run}_")
    progress, done = Progress(label), threading.Event()

    def elapsed() -> float:
        return time.perf_counter() - t0

    def watch() -> None:
        while not done.wait(0.5):
            sent = rows - left()
            progress.show(f"{sent}/{rows} rows, {elapsed():6.1f} s, {sent / elapsed():8.0f} rows/s")

    mark = sampler.mark()
    t0 = time.perf_counter()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        drain()
    finally:
        wall = time.perf_counter() - t0
        done.set()
        watcher.join()
        progress.done()
    return {"wall_s": round(wall, 3), "rows_per_s": round(rows / wall, 1), "cpu": sampler.since(mark, rows)}


# --- Ours, in this process ------------------------------------------------------------------------------------


def django_setup(world: World) -> None:
    os.environ.update(world.env)
    import django

    django.setup()
    from django.conf import settings

    import celery_app  # noqa: F401  (the project's Celery app, with its queues, becomes current_app)

    settings.OUTBOX_EVENT_ROUTES = {**settings.OUTBOX_EVENT_ROUTES, EVENT: [QUEUE]}
    # One message per row, as django-celery-outbox sends: the relay's own work compared (the saga modes
    # measure batches of events per message, CONSUMER_BATCH_SIZE).
    settings.CONSUMER_BATCH_SIZE = 1


def pending_rows() -> int:
    from ticketing.outbox.models import OutboxMessage

    return OutboxMessage.objects.using(ALIAS).filter(state="PENDING").count()


def per_message_publish(messages: Sequence[Any], *, deadline: float | None = None) -> list[str | None]:
    """The relay as it was: one ``send_task`` per message, each confirmed (``confirm_publish``) before the next."""
    from celery import current_app

    with current_app.producer_or_acquire() as producer:
        for m in messages:
            current_app.send_task(
                f"{m.queue}.handle_event", args=[m.envelope], queue=m.queue, headers=m.headers, producer=producer
            )
    return [None] * len(messages)  # None: confirmed


def drain_ours(world: World, config: str, rows: int) -> dict[str, Any]:
    from django.db import connections, transaction
    from django.db.models import Count
    from django.utils import timezone

    import ticketing.outbox.relay as relay
    from ticketing.outbox.models import OutboxMessage

    with connections[ALIAS].cursor() as cur:
        cur.execute(f"TRUNCATE {OutboxMessage._meta.db_table}")
    queue_depth(world.broker_url, purge=True)
    now, tag = timezone.now() - timedelta(seconds=1), uuid.uuid4().hex[:6]
    with transaction.atomic(using=ALIAS):
        OutboxMessage.objects.using(ALIAS).bulk_create(
            [
                OutboxMessage(
                    event=EVENT,
                    aggregate_id=str(i),
                    correlation_id=f"{tag}-{i}",
                    payload=envelope(i, tag)["payload"],
                    created_at=now,
                    next_attempt_at=now,
                )
                for i in range(rows)
            ],
            batch_size=2000,
        )
    with connections[ALIAS].cursor() as cur:
        cur.execute(f"ANALYZE {OutboxMessage._meta.db_table}")
    connections[ALIAS].close()  # every drain starts on a fresh connection, as a new relay process would
    batch = int(config.rsplit("B=", 1)[1])
    original = relay.publish_batch
    if config.startswith("send_task"):
        relay.publish_batch = per_message_publish
    try:
        result = timed_drain(
            config,
            rows,
            pending_rows,
            lambda: relay.relay_pending(using=ALIAS, max_batches=10**9, batch_size=batch),
            world.run,
        )
    finally:
        relay.publish_batch = original
    states = dict(OutboxMessage.objects.using(ALIAS).values_list("state").annotate(n=Count("id")).order_by())
    depth = settled_depth(world.broker_url, rows)
    return result | {"states": states, "queue_depth": depth, "verified": states == {"SENT": rows} and depth == rows}


# --- django-celery-outbox, in a subprocess ----------------------------------------------------------------------


def drain_dco(world: World, rows: int) -> dict[str, Any]:
    """The subprocess, its output (the package logs a line per batch) to a file, a progress line here."""
    out, progress = world.tmp / "dco-result.json", Progress("dco")
    argv = [PYTHON, "-m", "bench", "--internal-dco", str(out), "--rows", str(rows)]
    env = {**world.env, "BENCH_DCO_DATABASE": ALIAS, "BENCH_RUN": world.run}
    with open(world.tmp / "dco.log", "a") as logfile:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            with contextlib.suppress(psycopg2.Error):  # its table is created by then, or not yet
                progress.show(f"rows in its table: {world.query(ALIAS, 'SELECT count(*) FROM celery_outbox')[0][0]}")
            time.sleep(0.5)
    progress.done()
    if proc.returncode != 0:
        return {"verified": False, "error": (world.tmp / "dco.log").read_text()[-2000:], "rows_per_s": None}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def internal_dco(args: argparse.Namespace) -> int:
    """The subprocess: rows through the package's own API, 1,000 per commit, then its Relay until none is left."""
    import django

    django.setup()
    from django.db import connection, transaction
    from django_celery_outbox._settings import load_stale_timeout_seconds_setting
    from django_celery_outbox.models import CeleryOutbox
    from django_celery_outbox.relay import Relay, RelayConfig
    from django_celery_outbox.relay._message_selector import MessageSelector

    import bench.saga_settings

    app = bench.saga_settings.dco_app
    broker_url = os.environ["CELERY_BROKER_URL"]
    with connection.cursor() as cur:
        cur.execute("TRUNCATE celery_outbox, celery_outbox_dead_letter")
    queue_depth(broker_url, purge=True)
    tag = uuid.uuid4().hex[:6]
    for start in range(0, args.rows, 1000):
        with transaction.atomic():
            for i in range(start, min(args.rows, start + 1000)):
                app.send_task(f"{QUEUE}.handle_event", args=[envelope(i, tag)], queue=QUEUE)
    with connection.cursor() as cur:
        cur.execute("ANALYZE celery_outbox")
    connection.close()

    selected = [0]

    class CountingSelector(MessageSelector):
        def run(self) -> list[CeleryOutbox]:
            messages = super().run()
            selected[0] += len(messages)
            return messages

    config = RelayConfig.init(stale_timeout_seconds=load_stale_timeout_seconds_setting())  # its command's defaults
    selector = CountingSelector(
        batch_size=config.batch_size, stale_timeout=timedelta(seconds=config.stale_timeout_seconds)
    )
    relay = Relay(app=app, config=config, selector=selector)
    relay._setup_delayed_delivery()  # what Relay.start() does first, outside the timing

    def drain() -> None:
        # Relay.start()'s loop without its signal handlers. ``--rows`` is a multiple of its batch size,
        # so no batch comes back short and it never sleeps its idle time while rows are left.
        while selected[0] < args.rows:
            relay._processing()

    result = timed_drain("dco", args.rows, lambda: args.rows - selected[0], drain, os.environ["BENCH_RUN"])
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM celery_outbox")
        left, depth = cur.fetchone()[0], settled_depth(broker_url, args.rows)
    result |= {"left_in_outbox": left, "queue_depth": depth, "verified": left == 0 and depth == args.rows}
    with open(args.internal_dco, "w") as f:
        json.dump(result, f)
    return 0


# --- The mode ---------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace, argv: list[str]) -> int:
    if args.internal_dco:
        return internal_dco(args)
    world = World(settings_module="bench.saga_settings", extra_env=dict(item.split("=", 1) for item in args.env))
    result = new_result("relay", argv, {"rows": args.rows, "repeat": args.repeat, "configs": CONFIGS})
    result["reps"] = []
    with interruptible(result, world, args.keep):
        log(f"{world.run}: creating databases and vhost, migrating")
        world.create()
        django_setup(world)
        for rep in range(1, args.repeat + 1):
            for config in CONFIGS:  # in turn within each repeat: background load falls on all alike
                r = drain_dco(world, args.rows) if config == "dco" else drain_ours(world, config, args.rows)
                result["reps"].append(r | {"config": config, "rep": rep})
                cpu = r.get("cpu") or {}
                log(
                    f"{config} {rep}/{args.repeat}: {r.get('rows_per_s')} rows/s, "
                    f"{cpu.get('system_ms_per_unit')} ms CPU/row, verified {r['verified']}"
                )
        result["status"] = "PASSED" if all(r["verified"] for r in result["reps"]) else "FAILED"
    result["by_config"] = {
        c: {
            "rows_per_s": spread([r["rows_per_s"] for r in reps]),
            "cpu_ms_per_row": spread([r["cpu"]["system_ms_per_unit"] for r in reps]),
        }
        for c in CONFIGS
        if (reps := [r for r in result["reps"] if r["config"] == c and r.get("rows_per_s")])
    }
    for config, stats in result["by_config"].items():
        print(
            f"  {config:<26} {json.dumps(stats['rows_per_s'])} rows/s, {json.dumps(stats['cpu_ms_per_row'])} ms CPU/row"
        )
    if args.chart and result["by_config"]:
        panels = [
            ("confirmed rows per second", {c: {"rows/s": s["rows_per_s"]} for c, s in result["by_config"].items()})
        ]
        bar_chart(
            args.chart,
            panels,
            f"bench --mode relay, {result['started'][:10]}: {args.rows} rows per drain, median of {args.repeat}",
        )
    out = write_result(result, args.out)
    print(f"{result['status']}: wrote {out}")
    return 0 if result["status"] == "PASSED" else 1
