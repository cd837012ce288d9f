"""How fast the door answers: ``POST /api/door/check-in/`` on the real web server, as door devices scan.

    .venv/bin/python -m bench.door [--tickets 600] [--devices 4] [--repeat 3]

Creates databases of its own (as bench.seatmap does), a performance whose ``--tickets`` seats are all
sold (one CONFIRMED booking each, so one VALID ticket each) and a door user; starts the web server as
the Procfile does (the web front on granian, 2 workers). Then ``--devices`` door devices, a connection
each, scan their share of the tickets once (200, admitted) and then again (409, already checked in),
each scan sent when the device's last answer came, as a person at a gate does. Every ticket code
crosses the wire and is verified (Ed25519) by the server. A latency runs from sending the scan to its
answer. ``--warmup`` tickets are scanned first and not counted (each web worker's first requests load
the code). Each repeat uses tickets and a web server of its own. The door answers in under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from .common import PYTHON, ROOT, World, answers, free_port, new_result, percentiles, spread, write_result
from .common import log as bench_log
from .saga import web_command

PROMISE_MS = 300


def log(message: str) -> None:
    bench_log(f"door: {message}")


def setup(tickets: int) -> dict[str, Any]:
    """Inside the bench databases' environment: the sold-out hall, its tickets' codes, a door token."""
    import django

    django.setup()
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    from ticketing.accounts.models import User
    from ticketing.concerts.models import Concert, Performance, Seat, Ticket
    from ticketing.concerts.services import reservation_confirm, reservation_create
    from ticketing.concerts.ticket_codes import ticket_code

    concert = Concert.objects.using("concerts").create(title="벤치마크 홀", title_en="Benchmark hall")
    performance = Performance.objects.using("concerts").create(
        concert=concert, starts_at=timezone.now() + timedelta(hours=2), venue="-"
    )
    seats = Seat.objects.using("concerts").bulk_create(
        Seat(performance=performance, label=f"S-{n}", grade="S", price=1) for n in range(tickets)
    )
    run = secrets.token_hex(3)  # each repeat's users are new
    buyers = [User.objects.create_user(username=f"buyer-{run}-{n}", password=None) for n in range(-(-tickets // 4))]
    for n, seat in enumerate(seats):  # at most 4 seats per buyer, as MAX_SEATS_PER_USER
        reservation = reservation_create(user_id=buyers[n // 4].id, seat_id=seat.id)
        reservation_confirm(reservation_id=reservation.id, payment_id=reservation.id)
    staff = User.objects.create_superuser(username=f"door-staff-{run}", password=None)
    refresh = RefreshToken.for_user(staff)
    refresh["door"] = True
    token = refresh.access_token
    token.set_exp(lifetime=timedelta(hours=1))
    codes = [
        ticket_code(ticket_id=ticket.id, performance_id=ticket.performance_id, label=ticket.seat.label)
        for ticket in Ticket.objects.using("concerts").filter(performance=performance).select_related("seat")
    ]
    return {"codes": codes, "token": str(token)}


async def scan_all(port: int, token: str, codes: list[str], devices: int) -> dict[str, Any]:
    """Each device scans its share once, then again; the latencies and statuses of each pass."""
    passes = {}
    for name in ("first scan", "second scan"):
        passes[name] = await scan_pass(port, token, codes, devices)
        log(f"{name}: {passes[name]}")
    return passes


async def scan_pass(port: int, token: str, codes: list[str], devices: int) -> dict[str, Any]:
    import aiohttp

    url = f"http://127.0.0.1:{port}/api/door/check-in/"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def device(share: list[str]) -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for code in share:
                sent = time.perf_counter()
                async with session.post(url, data=json.dumps({"code": code}), headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - sent)
                statuses[response.status] = statuses.get(response.status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(device(codes[n::devices]) for n in range(devices)))
    elapsed = time.perf_counter() - started
    return {
        "latency_ms": percentiles(latencies),
        "statuses": statuses,
        "scans_per_s": round(len(latencies) / elapsed, 1),
    }


def wait_for_web(port: int, web: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.poll() is not None:
            raise RuntimeError(f"the web server exited with {web.returncode}")
        if answers(f"http://127.0.0.1:{port}/healthz"):
            return
        time.sleep(0.3)
    raise RuntimeError(f"the web server did not answer within {timeout}s")


def one_run(world: World, args: argparse.Namespace, run: int) -> dict[str, Any]:
    argv = [PYTHON, "-m", "bench.door", "--internal-setup", str(args.tickets + args.warmup)]
    done = subprocess.run(argv, cwd=ROOT, env=world.env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    port = free_port()
    log_path = world.tmp / f"web-{run}.log"
    with log_path.open("ab") as out:
        web = subprocess.Popen(
            web_command("front", port, args.web_workers),
            cwd=ROOT,
            env=world.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    warmup, codes = data["codes"][: args.warmup], data["codes"][args.warmup :]
    try:
        wait_for_web(port, web)
        asyncio.run(scan_pass(port, data["token"], warmup, args.devices))  # each web worker's first requests
        return asyncio.run(scan_all(port, data["token"], codes, args.devices))
    finally:
        web.terminate()
        web.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=600, help="tickets per repeat, each scanned twice")
    parser.add_argument("--devices", type=int, default=4, help="door devices scanning at once")
    parser.add_argument("--warmup", type=int, default=40, help="tickets scanned first, not counted")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--internal-setup", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal_setup is not None:
        print(json.dumps(setup(args.internal_setup)))
        return 0
    result = new_result("door", [], vars(args))
    result["command"] = " ".join([".venv/bin/python -m bench.door", *sys.argv[1:]])
    world = World(settings_module="ticketing.settings", extra_env={})
    world.env.update({"REDIS_URL": "redis://127.0.0.1:6379/0", "CACHE_KEY_PREFIX": world.run})
    reps = []
    try:
        log("creating and migrating the bench databases")
        world.create()
        for run in range(args.repeat):
            reps.append(one_run(world, args, run))
    finally:
        world.destroy()
    summary = {
        name: {q: spread([rep[name]["latency_ms"][q] for rep in reps]) for q in ("p50", "p99", "max")}
        for name in ("first scan", "second scan")
    }
    worst_p99 = max(rep[name]["latency_ms"]["p99"] for rep in reps for name in ("first scan", "second scan"))
    result |= {
        "status": "OK",
        "reps": reps,
        "summary": summary,
        "promise_ms": PROMISE_MS,
        "every_p99_under_the_promise": worst_p99 < PROMISE_MS,
    }
    path = write_result(result, None)
    log(f"summary (median [min-max] of {args.repeat}): {json.dumps(summary)}; written to {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
    sys.exit(main())
