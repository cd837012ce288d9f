"""``--mode rush``: the on-sale moment, with the waiting room and without it, side by side.

``--clients`` (5,000) clients arrive within ``--arrive-within`` (10) s at a performance of ``--rush-seats``
(240) seats on sale now. With the waiting room each joins it, polls its place every 2 s and, once admitted,
books 1 to 4 seats it saw available, trying others on 409; without it each books at once the same way. A
watcher of the concerts database notes when the last seat was taken and when every saga had settled;
then the clients still waiting poll on for 5 s, so that the web server's CPU per poll shows on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import aiohttp

from bench.common import CpuSampler, Progress, World, interruptible, log, new_result, percentiles, write_result
from bench.saga import CONFIGS, System, populate

CALIBRATION_S = 5.0


class Rush:
    def __init__(self, args: argparse.Namespace, port: int, users: list[list[Any]], performance: int, queued: bool):
        self.args, self.users, self.performance, self.queued = args, users, performance, queued
        self.base = f"http://127.0.0.1:{port}/api"
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.codes: Counter[str] = Counter()
        self.joined: dict[int, float] = {}  # client -> when its join was answered
        self.admitted: dict[int, str] = {}  # client -> the end of its admission (the server's clock)
        self.booked = 0
        self.sold_out = threading.Event()  # set by the watcher
        self.calibrating_until = 0.0

    async def call(
        self, session: aiohttp.ClientSession, kind: str, method: str, path: str, i: int, body: Any = None
    ) -> tuple[int | str, Any]:
        headers = {"Authorization": f"Bearer {self.users[i][1]}"}
        t0 = time.monotonic()
        try:
            async with session.request(method, f"{self.base}{path}", json=body, headers=headers) as response:
                code: int | str = response.status
                data = await response.json(content_type=None) if response.status < 500 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            code, data = type(exc).__name__, None
        self.latency[kind].append(time.monotonic() - t0)
        self.codes[f"{kind} {code}"] += 1
        return code, data

    async def book(self, session: aiohttp.ClientSession, i: int) -> bool:
        """Book 1 to 4 seats seen available; on 409 look again. False: admission gone, poll again."""
        want = random.randint(1, 4)
        while not self.sold_out.is_set():
            _, seats = await self.call(session, "seat map", "GET", f"/performances/{self.performance}/seats/", i)
            free = [s["id"] for s in seats or [] if s["status"] == "AVAILABLE"]
            if not free:
                return True
            picked = random.sample(free, min(want, len(free)))
            code, _ = await self.call(session, "booking", "POST", "/reservations/", i, {"seat_ids": picked})
            if code == 202:
                self.booked += len(picked)
                return True
            if code == 403:
                return False
            await asyncio.sleep(0.1 if code == 409 else 1.0)
        return True

    async def client(self, session: aiohttp.ClientSession, i: int, start: float) -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        if not self.queued:
            await self.book(session, i)
            return
        path = f"/performances/{self.performance}/queue/"
        code, place = await self.call(session, "join", "POST", path, i)
        self.joined[i] = time.monotonic()
        while not self.sold_out.is_set() or time.monotonic() < self.calibrating_until:
            if code == 200 and place["admitted"] and not self.sold_out.is_set():
                self.admitted.setdefault(i, place["admitted_until"])
                if await self.book(session, i):
                    return
            elif code == 404:
                return  # the admission ended with the saga
            await asyncio.sleep(2.0)
            code, place = await self.call(session, "poll", "GET", path, i)

    def run(self, stop: threading.Event) -> threading.Thread:
        async def drive() -> None:
            timeout = aiohttp.ClientTimeout(total=self.args.request_timeout)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
                t0, n = time.monotonic(), len(self.users)
                tasks = [
                    asyncio.create_task(self.client(session, i, t0 + i * self.args.arrive_within / n)) for i in range(n)
                ]
                while not stop.is_set() and not all(task.done() for task in tasks):
                    await asyncio.sleep(0.2)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        thread = threading.Thread(target=asyncio.run, args=(drive(),), daemon=True, name="rush")
        thread.start()
        return thread


def spearman(xs: list[float], ys: list[float]) -> float | None:
    def ranks(values: list[float]) -> list[float]:
        rank = {k: r for r, k in enumerate(sorted(range(len(values)), key=values.__getitem__))}
        return [float(rank[k]) for k in range(len(values))]

    if len(xs) < 3:
        return None
    return round(statistics.correlation(ranks(xs), ranks(ys)), 4)


def oversold(world: World, seat_ids: list[int]) -> int:
    """Confirmed bookings of the rush's seats beyond one per seat."""
    return int(
        world.query(
            "concerts",
            "SELECT count(*) - count(DISTINCT l.seat_id) FROM concerts_reservationseat l"
            " JOIN concerts_reservation r ON r.id = l.reservation_id"
            " WHERE l.seat_id = ANY(%s) AND r.status = 'CONFIRMED'",
            [seat_ids],
        )[0][0]
    )


def rush_once(args: argparse.Namespace, world: World, queued: bool, rep: int) -> dict[str, Any]:
    label = f"rush {'with' if queued else 'without'} the waiting room {rep}/{args.repeat}"
    rush_hall = ["--rush-seats", str(args.rush_seats), *(["--queue"] if queued else [])]
    data = populate(
        world, users=args.clients, fail_ratio=0, seats=0, label=f"rush{int(queued)}{rep}", minutes=30, extra=rush_hall
    )
    performance, seat_ids = data["performance"], data["seats"]
    log_dir = world.tmp / "logs" / f"rush-{int(queued)}-{rep}"
    log_dir.mkdir(parents=True)
    system = System(world, CONFIGS["ours"], args, log_dir)
    try:
        system.start()
        system.wait_ready()
        sampler = CpuSampler({proc.pid: n for n, proc in system.procs.items()}, f"{world.run}_")
        sampler.start()
        rush, stop, progress = (
            Rush(args, system.port, data["users"], performance, queued),
            threading.Event(),
            Progress(label),
        )
        mark, t0 = sampler.mark(), time.monotonic()
        thread, sold_out_s, settled_s = rush.run(stop), None, None
        while settled_s is None and time.monotonic() - t0 < args.settle_timeout:
            system.check_alive()
            taken, pending = world.query(
                "concerts",
                "SELECT (SELECT count(*) FROM concerts_seat WHERE id = ANY(%s) AND status <> 'AVAILABLE'),"
                " (SELECT count(*) FROM concerts_reservation WHERE status = 'PENDING')",
                [seat_ids],
            )[0]
            now = time.monotonic() - t0
            if taken == len(seat_ids) and sold_out_s is None:
                sold_out_s = round(now, 2)
                rush.calibrating_until = time.monotonic() + 600  # the waiting clients poll on
                rush.sold_out.set()
            if sold_out_s is not None and not pending:
                settled_s = round(now, 2)
            requests = sum(rush.codes.values())
            progress.show(
                f"{now:6.1f}s  seats taken {taken}/{len(seat_ids)}  pending sagas {pending}  requests {requests}"
            )
            time.sleep(0.1)
        progress.done()
        cpu = sampler.since(mark, max(rush.booked, 1))
        polls0, calib = len(rush.latency["poll"]), sampler.mark()
        time.sleep(CALIBRATION_S)
        polls = len(rush.latency["poll"]) - polls0
        web_s = sampler.since(calib, 1)["groups_s"].get("web", 0.0)
        stop.set()
        thread.join(timeout=30)
        sampler.stopping.set()
    finally:
        system.stop()
    order = sorted(rush.admitted)
    result: dict[str, Any] = {
        "config": "queue" if queued else "no queue",
        "sold_out_s": sold_out_s,
        "settled_s": settled_s,
        "seats_booked": rush.booked,
        "requests": {kind: percentiles(values) for kind, values in rush.latency.items()},
        "answers": dict(rush.codes),
        "errors": {k: n for k, n in rush.codes.items() if not k[-3:].isdigit() or k[-3:] >= "500"},  # 5xx, timeouts
        "cpu": cpu,
        "web_cpu_ms_per_poll": round(1000 * web_s / polls, 3) if polls else None,
        "polls_in_calibration": polls,
        "admitted": len(order),
        "join_admission_rank_correlation": spearman(
            [rush.joined[i] for i in order], [datetime.fromisoformat(rush.admitted[i]).timestamp() for i in order]
        ),
        "oversold_seats": oversold(world, seat_ids),
        "audit": world.audit(),
    }
    result["failures"] = [f"{k}: {v}" for k, v in result["errors"].items()]
    result["failures"] += [] if result["audit"]["passed"] else ["the audit failed"]
    result["failures"] += [f"{result['oversold_seats']} seats oversold"] if result["oversold_seats"] else []
    result["failures"] += [] if settled_s is not None else ["not sold out and settled in time"]
    return result


def main(args: argparse.Namespace, argv: list[str]) -> int:
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0"}
    world = World(settings_module="ticketing.settings", extra_env=env | dict(item.split("=", 1) for item in args.env))
    world.env["CACHE_KEY_PREFIX"] = world.run  # the waiting room's keys, apart from anyone else's
    result = new_result("rush", argv, {k: v for k, v in vars(args).items() if not k.startswith("internal")})
    result["reps"] = []
    with interruptible(result, world, args.keep):
        world.create()
        for rep in range(1, args.repeat + 1):
            for queued in (True, False):
                result["reps"].append(rush_once(args, world, queued, rep))
                r = result["reps"][-1]
                log(
                    f"{r['config']}: sold out {r['sold_out_s']} s, settled {r['settled_s']} s, errors {r['errors']}, "
                    f"rank correlation {r['join_admission_rank_correlation']}, CPU/poll {r['web_cpu_ms_per_poll']} ms, "
                    f"oversold {r['oversold_seats']}"
                )
        result["status"] = "FAILED" if any(r["failures"] for r in result["reps"]) else "PASSED"
    out = write_result(result, args.out)
    print(f"{result['status']}: wrote {out}")
    return 0 if result["status"] == "PASSED" else 1
