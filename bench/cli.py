"""``python -m bench``: the command line. It parses the arguments and hands each mode to its module.

Modules are used in one direction: this one uses the modes, ``rush`` builds on ``saga``, and no mode
imports this one or another that builds on it (an import-linter contract says so).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from bench import saga
from bench.saga import CONFIGS, SEATS_PER_USER


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(saga.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mode", choices=["closed", "open", "burst", "relay", "rush", "poll-flood"], default="closed")
    parser.add_argument("--rate", type=float, default=20.0, help="open loop: bookings per second")
    parser.add_argument("--concurrency", type=int, default=16, help="closed loop: clients")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of booking per measurement")
    parser.add_argument("--burst", type=int, default=2000, help="burst: bookings offered, on as many fresh seats")
    parser.add_argument("--burst-within", type=float, default=2.0, help="burst: seconds over which they are offered")
    parser.add_argument("--burst-settle", type=float, default=60.0, help="burst: seconds every saga must settle in")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per configuration, each on fresh seats")
    parser.add_argument(
        "--configs",
        default="ours",
        help=f"comma-separated, from: {'; '.join(f'{n} = {c.title}' for n, c in CONFIGS.items())}",
    )
    parser.add_argument("--chart", type=Path, help="draw the configurations side by side into this PNG")
    parser.add_argument(
        "--users", type=int, default=0, help=f"users per measurement (default: {SEATS_PER_USER} seats each)"
    )
    parser.add_argument("--fail-ratio", type=float, default=0.0, help="share of users left unfunded (payment-fail)")
    parser.add_argument("--seats", type=int, default=0, help="seats per measurement (default: enough)")
    parser.add_argument("--warmup", type=int, default=40, help="sagas run (and not counted) before measuring")
    parser.add_argument(
        "--web",
        choices=["front", "gunicorn", "gthread", "granian"],
        default="front",
        help="web server: the Procfile's front (granian, ASGI: the waiting room's fast path, Django on threads), "
        "or Django alone on gunicorn's sync workers, gunicorn's threads or granian's WSGI",
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--pool",
        default="",
        metavar="QUEUE=POOL[:N],...",
        help="ours only: the Celery pool (prefork, threads, solo) and concurrency per queue, e.g. "
        "'concerts=threads:4,payments=solo' (default: prefork as in the Procfile; the peers keep theirs)",
    )
    parser.add_argument("--request-timeout", type=float, default=60.0, help="a booking unanswered by then is a timeout")
    parser.add_argument("--poll-interval", type=float, default=0.02)
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a setting for every process")
    parser.add_argument("--keep", action="store_true", help="keep the databases, vhost and logs")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/<time>-<mode>.json)")
    parser.add_argument("--rows", type=int, default=20_000, help="relay: pending rows per drain")
    parser.add_argument("--clients", type=int, default=5000, help="rush: clients, each a user of its own")
    parser.add_argument("--arrive-within", type=float, default=10.0, help="rush: seconds over which they arrive")
    parser.add_argument("--rush-seats", type=int, default=0, help="rush: seats of the performance (default 240)")
    parser.add_argument(
        "--pre-queue-share", type=float, default=0.5, help="rush: share of the clients arriving before the opening"
    )
    parser.add_argument(
        "--rush-configs",
        default="queue,no-queue",
        help="rush: with the waiting room (queue), without (no-queue), or both",
    )
    parser.add_argument("--flood-connections", type=int, default=2000, help="poll-flood: open connections (wrk -c)")
    parser.add_argument("--flood-seconds", type=int, default=20, help="poll-flood: seconds of flood (wrk -d)")
    parser.add_argument("--flood-users", type=int, default=2000, help="poll-flood: users in the waiting room")
    parser.add_argument("--opens-later", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queue", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--internal-setup", help=argparse.SUPPRESS)
    parser.add_argument("--internal-dco", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    parser.add_argument("--token-minutes", type=int, default=15, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    if unknown := [name for name in args.configs if name not in CONFIGS] or (not args.configs and ["(none)"]):
        parser.error(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if args.mode == "burst":
        args.rate, args.duration = args.burst / args.burst_within, args.burst_within
        args.seats = args.seats or args.burst
    elif not args.seats:
        args.seats = int((args.rate * 1.1 if args.mode == "open" else 200) * args.duration) + 100
    args.users = args.users or math.ceil(args.seats / SEATS_PER_USER)
    # Only a rush gets a hall of its own: the saga's measurements book the big hall (internal setup
    # reads this flag to tell them apart).
    if args.mode == "rush":
        args.rush_seats = args.rush_seats or 240
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.internal_setup:
        return saga.internal_setup(args)
    if args.mode == "relay" or args.internal_dco:
        from bench import relay

        return relay.main(args, argv)
    if args.mode in ("rush", "poll-flood"):
        from bench import rush

        return rush.main(args, argv) if args.mode == "rush" else rush.flood_main(args, argv)
    return saga.main(args, argv)
