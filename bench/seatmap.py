"""What one open seat map costs the server: bytes and CPU per poll of the seat-status endpoint.

    .venv/bin/python -m bench.seatmap [--seats 2000] [--taken 0.5] [--polls 3000]

Creates PostgreSQL databases of its own (as bench.saga does), a hall of ``--seats`` seats with a
share ``--taken`` sold or held, and then polls ``/performances/{id}/seats.json`` through Django's WSGI
handler in one process (the whole middleware stack; no HTTP parsing, no network),
timing the process's CPU. Three kinds of poll: nothing changed (304 to a known ETag), a new map
from the process's memory (200), and a new map computed from the database (200, which happens at
most once a second per performance and web process, whatever the number of open pages).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .common import PYTHON, ROOT, World
from .common import log as bench_log


def log(message: str) -> None:
    bench_log(f"seatmap: {message}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Inside the bench databases' environment: make the hall, poll it, return the figures."""
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.utils import timezone

    from ticketing.concerts.models import Concert, Performance, Seat

    concert = Concert.objects.using("concerts").create(title="벤치마크 홀", title_en="Benchmark hall")
    performance = Performance.objects.using("concerts").create(concert=concert, starts_at=timezone.now(), venue="-")
    taken = int(args.seats * args.taken)
    Seat.objects.using("concerts").bulk_create(
        Seat(performance=performance, label=f"S-{n}", grade="S", price=1, status=status_of(n, taken))
        for n in range(args.seats)
    )
    path = f"/performances/{performance.id}/seats.json"
    handler = WSGIHandler()

    def poll(etag: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
            **({"HTTP_IF_NONE_MATCH": etag} if etag else {}),
        }
        answer: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            answer.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(handler(environ, start_response))
        return answer["status"], answer["headers"], body

    status, headers, body = poll()
    etag = dict(headers)["ETag"]
    kinds: dict[str, Callable[[], tuple[str, list[tuple[str, str]], bytes]]] = {
        "unchanged (304)": lambda: poll(etag),
        "changed, from memory (200)": lambda: poll(),
        "changed, from the database (200)": lambda: fresh(poll),
    }
    results = {}
    for name, run in kinds.items():
        for _ in range(50):  # warm up
            run()
        started = time.process_time()
        for _ in range(args.polls):
            status, headers, body = run()
        cpu = (time.process_time() - started) / args.polls
        head = len(f"HTTP/1.1 {status}\r\n") + sum(len(f"{k}: {v}\r\n") for k, v in headers) + 2
        results[name] = {"status": status, "cpu_us": round(cpu * 1e6), "header_bytes": head, "body_bytes": len(body)}
        log(f"{name}: {results[name]}")
    return {"seats": args.seats, "taken": taken, "polls": args.polls, "results": results}


def fresh(poll: Callable[[], tuple[str, list[tuple[str, str]], bytes]]) -> tuple[str, list[tuple[str, str]], bytes]:
    """A poll that finds nothing in the process's memory, so it reads the database."""
    from ticketing.shop import views

    views._seat_statuses.clear()
    return poll()


def status_of(n: int, taken: int) -> str:
    if n >= taken:
        return "AVAILABLE"
    return "HELD" if n % 10 == 0 else "SOLD"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seats", type=int, default=2000)
    parser.add_argument("--taken", type=float, default=0.5, help="share of the seats sold or held")
    parser.add_argument("--polls", type=int, default=3000)
    parser.add_argument("--internal", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal:
        print(json.dumps(measure(args)))
        return 0
    world = World(settings_module="ticketing.settings", extra_env={})
    world.env.update({"REDIS_URL": "redis://127.0.0.1:6379/0", "CACHE_KEY_PREFIX": world.run})
    try:
        log("creating and migrating the bench databases")
        world.create()
        argv = [PYTHON, "-m", "bench.seatmap", "--internal", *sys.argv[1:]]
        done = subprocess.run(argv, cwd=ROOT, env=world.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        sys.stderr.write(done.stderr)
        print(done.stdout.strip().splitlines()[-1])
    finally:
        world.destroy()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
    sys.exit(main())
