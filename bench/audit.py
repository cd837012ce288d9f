"""The saga audit on a million sagas: peak memory and time of ``audit()``.

    .venv/bin/python -m bench.audit [--sagas 1000000] [--users 100000] [--module ticketing.audit.invariants]

It builds three scratch PostgreSQL databases of its own (migrated like the real ones), fills them in
SQL (generate_series): performances of 1,000 seats, one reservation per seat (4 in 5 CONFIRMED with a
successful payment and a charge in the ledger, 1 in 5 SYSTEM_CANCELED with a refused payment), a
wallet per user whose balance matches its ledger. Then it runs the audit in a fresh process, as
``manage.py audit_sagas`` does, and reports that process's peak RSS (from wait4) and wall time.
``--module`` names another module with an ``audit()`` (say, an older version on PYTHONPATH) to
compare. The databases are dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg2

from ticketing.events.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "root"}
PG_URL = "postgres://root@127.0.0.1:5432"
SERVICES = {service.name: service.database for service in CATALOGUE.services}  # service -> database alias
SEATS_PER_PERFORMANCE = 1000


def world_env(names: dict[str, str], var_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CACHE_KEY_PREFIX", "TICKETING_DEV"}}
    env.update({f"{service.upper()}_DATABASE_URL": f"{PG_URL}/{name}" for service, name in names.items()})
    env.update(
        {
            "SECRET_KEY": f"bench-only-{secrets.token_urlsafe(32)}",
            "DEBUG": "0",
            "CELERY_BROKER_URL": "memory://",
            "TICKETING_VAR_DIR": var_dir,
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "ticketing.settings",
        }
    )
    return env


def sql(name: str, *statements: str) -> None:
    conn = psycopg2.connect(**PG, dbname=name)
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()


def fill(names: dict[str, str], *, sagas: int, users: int) -> None:
    performances = -(-sagas // SEATS_PER_PERFORMANCE)
    sql(
        names["concerts"],
        "INSERT INTO concerts_concert (title, title_en, artist, description) VALUES ('bench', '', '', '')",
        "INSERT INTO concerts_performance (concert_id, starts_at, venue) SELECT (SELECT min(id) FROM concerts_concert),"
        f" now() + interval '30 days', 'hall ' || g FROM generate_series(1, {performances}) g",
        "INSERT INTO concerts_seat (performance_id, label, grade, price, status)"
        f" SELECT p.id, 'S-' || s, 'A', 10000, 'AVAILABLE' FROM concerts_performance p,"
        f" generate_series(1, {SEATS_PER_PERFORMANCE}) s ORDER BY p.id, s LIMIT {sagas}",
        # Reservation n holds seat n: 1 in 5 is compensated, the rest are confirmed and their seat sold.
        "INSERT INTO concerts_reservation (user_id, seat_id, amount, status, saga_step, reason, created_at, updated_at)"
        f" SELECT (id % {users}) + 1, id, 10000,"
        " CASE WHEN id % 5 = 0 THEN 'SYSTEM_CANCELED' ELSE 'CONFIRMED' END,"
        " CASE WHEN id % 5 = 0 THEN 'SYSTEM_CANCEL_PAYMENT' ELSE 'SUCCESS_PAYMENT' END,"
        " CASE WHEN id % 5 = 0 THEN 'insufficient balance' ELSE '' END,"
        " now() - interval '1 hour', now() - interval '1 hour' FROM concerts_seat ORDER BY id",
        "UPDATE concerts_seat SET status = 'SOLD' WHERE id % 5 <> 0",
        "ANALYZE",
    )
    sql(
        names["payments"],
        "INSERT INTO payments_wallet (user_id, balance, created_at)"
        f" SELECT u, 0, now() FROM generate_series(1, {users}) u",
        "INSERT INTO payments_payment (reservation_id, user_id, amount, status, reason, created_at, updated_at)"
        f" SELECT n, (n % {users}) + 1, CASE WHEN n % 5 = 0 THEN 0 ELSE 10000 END,"
        " CASE WHEN n % 5 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END,"
        " CASE WHEN n % 5 = 0 THEN 'insufficient balance' ELSE '' END, now(), now()"
        f" FROM generate_series(1, {sagas}) n",
        "INSERT INTO payments_walletentry (wallet_id, kind, amount, reservation_id, created_at)"
        " SELECT id, 'TOPUP', 1000000000, NULL, now() FROM payments_wallet",
        "INSERT INTO payments_walletentry (wallet_id, kind, amount, reservation_id, created_at)"
        f" SELECT w.id, 'CHARGE', 10000, n, now() FROM generate_series(1, {sagas}) n"
        f" JOIN payments_wallet w ON w.user_id = (n % {users}) + 1 WHERE n % 5 <> 0",
        "UPDATE payments_wallet w SET balance = e.total FROM (SELECT wallet_id,"
        " SUM(CASE WHEN kind = 'CHARGE' THEN -amount ELSE amount END) AS total FROM payments_walletentry"
        " GROUP BY wallet_id) e WHERE w.id = e.wallet_id",
        "ANALYZE",
    )


def measure(env: dict[str, str], module: str) -> dict[str, Any]:
    """Run the audit in a fresh process; its wall time, peak RSS and what it found."""
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.audit", "--internal-audit", module], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"the audit failed (exit {child.returncode})")
    found = json.loads(output)
    return {
        "module": module,
        "seconds": round(time.monotonic() - started, 1),
        "audit_seconds": found["seconds"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # kilobytes on Linux
        "violations": found["violations"],
    }


def internal_audit(module: str) -> None:
    import importlib

    import django

    django.setup()
    started = time.monotonic()
    violations = importlib.import_module(module).audit()
    print(json.dumps({"seconds": round(time.monotonic() - started, 1), "violations": len(violations)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sagas", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--module", action="append", help="module with audit(); repeat to compare")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument("--internal-audit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal_audit:
        internal_audit(args.internal_audit)
        return
    run = uuid.uuid4().hex[:8]
    names = {service: f"bench_audit_{run}_{service}" for service in SERVICES}
    env = world_env(names, tempfile.mkdtemp(prefix=f"bench_audit_{run}_"))
    try:
        for name in names.values():
            sql("postgres", f'CREATE DATABASE "{name}"')
        for alias in SERVICES.values():
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--database", alias, "--noinput", "-v", "0"],
                cwd=ROOT,
                env=env,
                check=True,
            )
        started = time.monotonic()
        fill(names, sagas=args.sagas, users=args.users)
        print(f"filled {args.sagas:,} sagas of {args.users:,} users in {time.monotonic() - started:.0f} s", flush=True)
        for module in args.module or ["ticketing.audit.invariants"]:
            print(json.dumps({"sagas": args.sagas, **measure(env, module)}), flush=True)
    finally:
        if not args.keep:
            for name in names.values():
                sql("postgres", f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
