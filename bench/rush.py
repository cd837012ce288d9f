"""``--mode rush``: the on-sale moment, with the waiting room and without it; ``--mode poll-flood``: polls alone.

Rush: ``--clients`` (5,000) clients, each a user of its own, arrive within ``--arrive-within`` (10) s at a
performance of ``--rush-seats`` (240) seats; the sales open after ``--pre-queue-share`` (half) of them
arrived. With the waiting room each joins it (before the opening: the pre-queue), polls when the
server says (``poll_after_seconds``, with its queue ticket) and, once admitted, books 1 to 4 seats it
saw available, trying others on 409; without it each books at the opening (or on arrival, after it)
the same way. A watcher of the concerts database notes when the last seat was taken and when every
saga had settled; then the clients still waiting poll on for 5 s, so that the web server's CPU per
poll shows on its own.

Fairness: each client's turn (the room's order of admission, read from its queue ticket) against the
order in which it joined, as a rank correlation, separately for the pre-queue (a shuffle: about 0)
and after the opening (first come, first served: about 1); also for those actually admitted.

Poll flood: ``--flood-users`` join a queued performance (a hundred are admitted), then ``wrk`` keeps
``--flood-connections`` connections polling with their queue tickets for ``--flood-seconds``, while
an admitted user's booking is timed in the middle of it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import resource
import shutil
import statistics
import subprocess
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import CpuSampler, Progress, World, interruptible, log, new_result, percentiles, write_result
from bench.saga import CONFIGS, System, populate

CALIBRATION_S = 5.0
# Every client of a rush comes from 127.0.0.1: the per-address join throttle would stop them.
BENCH_ENV = {"REDIS_URL": "redis://127.0.0.1:6379/0", "QUEUE_JOIN_RATE_PER_ADDRESS": "100000000"}


def turn_of(ticket: str | None) -> int | None:
    """The turn a queue ticket carries ("performance.user.turn.epoch.session:signature"; signed, not secret)."""
    if not ticket:
        return None
    fields = ticket.split(":", 1)[0].split(".")
    return int(fields[2]) if len(fields) == 5 and fields[2] else None


class Rush:
    def __init__(
        self, args: argparse.Namespace, port: int, users: list[list[Any]], performance: int, queued: bool, opens: float
    ):
        self.args, self.users, self.performance, self.queued = args, users, performance, queued
        self.opens = opens  # time.monotonic() of the opening
        self.base = f"http://127.0.0.1:{port}/api"
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.codes: Counter[str] = Counter()
        self.joined: dict[int, float] = {}  # client -> when its join was answered
        self.pre: set[int] = set()  # clients whose join put them in the pre-queue
        self.turns: dict[int, int] = {}  # client -> its turn, from its queue ticket
        self.admitted: dict[int, str] = {}  # client -> the end of its first admission window (server's clock)
        self.tickets: dict[int, str] = {}
        self.booked = 0
        self.sold_out = threading.Event()  # set by the watcher
        self.calibrating_until = 0.0

    async def call(
        self, session: aiohttp.ClientSession, kind: str, method: str, path: str, i: int, body: Any = None
    ) -> tuple[int | str, Any, float | None]:
        """The answer's status, JSON body and Retry-After (seconds)."""
        headers = {"Authorization": f"Bearer {self.users[i][1]}"}
        if i in self.tickets and "/queue/" in path:
            headers["X-Queue-Ticket"] = self.tickets[i]
        t0 = time.monotonic()
        retry_after = None
        try:
            async with session.request(method, f"{self.base}{path}", json=body, headers=headers) as response:
                code: int | str = response.status
                data = await response.json(content_type=None)
                retry_after = float(response.headers.get("Retry-After") or 0) or None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            code, data = type(exc).__name__, None
        self.latency[kind].append(time.monotonic() - t0)
        self.codes[f"{kind} {code}"] += 1
        return code, data, retry_after

    async def book(self, session: aiohttp.ClientSession, i: int) -> bool:
        """Book 1 to 4 seats seen available; on 409 look again. False: admission gone, poll again."""
        want = random.randint(1, 4)
        while not self.sold_out.is_set():
            _, seats, _ = await self.call(session, "seat map", "GET", f"/performances/{self.performance}/seats/", i)
            free = [s["id"] for s in seats or [] if s["status"] == "AVAILABLE"]
            if not free:
                return True
            picked = random.sample(free, min(want, len(free)))
            code, _, _ = await self.call(session, "booking", "POST", "/reservations/", i, {"seat_ids": picked})
            if code == 202:
                self.booked += len(picked)
                return True
            if code == 403:
                return False
            await asyncio.sleep(0.1 if code == 409 else 1.0)
        return True

    def note(self, i: int, place: Any) -> None:
        if isinstance(place, dict) and place.get("ticket"):
            self.tickets[i] = place["ticket"]
            if (turn := turn_of(place["ticket"])) is not None:
                self.turns.setdefault(i, turn)

    async def client(self, session: aiohttp.ClientSession, i: int, start: float) -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        if not self.queued:
            await asyncio.sleep(max(0.0, self.opens - time.monotonic()))  # before the opening: at the ready
            await self.book(session, i)
            return
        path = f"/performances/{self.performance}/queue/"
        code, place, wait = await self.call(session, "join", "POST", path, i)
        while code != 200 and not self.sold_out.is_set():  # 429, 503: as told
            await asyncio.sleep(wait or 2.0)
            code, place, wait = await self.call(session, "join", "POST", path, i)
        self.joined[i] = time.monotonic()
        if code == 200 and place["position"] is None:
            self.pre.add(i)
        while not self.sold_out.is_set() or time.monotonic() < self.calibrating_until:
            if code == 200:
                self.note(i, place)
                if place["admitted"] and not self.sold_out.is_set():
                    self.admitted.setdefault(i, place["admitted_until"])
                    if await self.book(session, i):
                        return
                    wait = 0.5
                else:
                    wait = float(place["poll_after_seconds"])
            elif code == 404:
                return  # the admission ended with the saga
            await asyncio.sleep(wait or 2.0)
            code, place, wait = await self.call(session, "poll", "GET", path, i)

    def run(self, stop: threading.Event) -> threading.Thread:
        async def drive() -> None:
            timeout = aiohttp.ClientTimeout(total=self.args.request_timeout)
            # No cookie jar: every client is another user (the queue ticket goes in a header).
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(
                connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
            ) as session:
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

    def fairness(self) -> dict[str, Any]:
        """Join order against the room's order (turns), and against admission, per half."""

        def correlation(clients: list[int], order: dict[int, float]) -> dict[str, Any]:
            known = [i for i in clients if i in order]
            return {
                "n": len(known),
                "rank_correlation": spearman([self.joined[i] for i in known], [order[i] for i in known]),
            }

        admitted_at = {i: datetime.fromisoformat(end).timestamp() for i, end in self.admitted.items()}
        turns = {i: float(t) for i, t in self.turns.items()}
        pre = sorted(self.pre)
        after = sorted(set(self.joined) - self.pre)
        return {
            "pre_queue": {"turns": correlation(pre, turns), "admitted": correlation(pre, admitted_at)},
            "after_opening": {"turns": correlation(after, turns), "admitted": correlation(after, admitted_at)},
        }


def spearman(xs: list[float], ys: list[float]) -> float | None:
    def ranks(values: list[float]) -> list[float]:
        """Ranks, ties sharing their average (users admitted in one step share an admission time)."""
        order = sorted(range(len(values)), key=values.__getitem__)
        rank = [0.0] * len(values)
        start = 0
        while start < len(order):
            end = start
            while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
                end += 1
            for k in order[start : end + 1]:
                rank[k] = (start + end) / 2
            start = end + 1
        return rank

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


def open_sales_in(world: World, performance: int, seconds: float) -> None:
    world.query(
        "concerts",
        "UPDATE concerts_performance SET sales_open_at = now() + make_interval(secs => %s) WHERE id = %s",
        [seconds, performance],
    )


def rush_once(args: argparse.Namespace, world: World, queued: bool, rep: int) -> dict[str, Any]:
    label = f"rush {'with' if queued else 'without'} the waiting room {rep}/{args.repeat}"
    rush_hall = ["--rush-seats", str(args.rush_seats), "--opens-later", *(["--queue"] if queued else [])]
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
        opening_s = args.arrive_within * args.pre_queue_share
        open_sales_in(world, performance, opening_s)
        t0 = time.monotonic()
        rush, stop, progress = (
            Rush(args, system.port, data["users"], performance, queued, t0 + opening_s),
            threading.Event(),
            Progress(label),
        )
        mark = sampler.mark()
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
    result: dict[str, Any] = {
        "config": "queue" if queued else "no queue",
        "opening_s": opening_s,
        "sold_out_s": sold_out_s,
        "sold_out_after_opening_s": round(sold_out_s - opening_s, 2) if sold_out_s is not None else None,
        "settled_s": settled_s,
        "seats_booked": rush.booked,
        "requests": {kind: percentiles(values) for kind, values in rush.latency.items()},
        "answers": dict(rush.codes),
        "errors": {k: n for k, n in rush.codes.items() if not k[-3:].isdigit() or k[-3:] >= "500"},  # 5xx, timeouts
        "cpu": cpu,
        "web_cpu_ms_per_poll": round(1000 * web_s / polls, 3) if polls else None,
        "polls_in_calibration": polls,
        "admitted": len(rush.admitted),
        "fairness": rush.fairness() if queued else None,
        "oversold_seats": oversold(world, seat_ids),
        "audit": world.audit(),
    }
    result["failures"] = [f"{k}: {v}" for k, v in result["errors"].items()]
    result["failures"] += [] if result["audit"]["passed"] else ["the audit failed"]
    result["failures"] += [f"{result['oversold_seats']} seats oversold"] if result["oversold_seats"] else []
    result["failures"] += [] if settled_s is not None else ["not sold out and settled in time"]
    return result


def new_world(args: argparse.Namespace) -> World:
    raise_open_files_limit()
    extra = BENCH_ENV | dict(item.split("=", 1) for item in args.env)
    world = World(settings_module="ticketing.settings", extra_env=extra)
    world.env["CACHE_KEY_PREFIX"] = world.run  # the waiting room's keys, apart from anyone else's
    return world


def raise_open_files_limit() -> None:
    """Thousands of connections at once, on both ends: the soft limit of open files up to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(args: argparse.Namespace, argv: list[str]) -> int:
    world = new_world(args)
    result = new_result("rush", argv, {k: v for k, v in vars(args).items() if not k.startswith("internal")})
    result["reps"] = []
    configs = [c.strip() for c in args.rush_configs.split(",") if c.strip()]
    with interruptible(result, world, args.keep):
        world.create()
        for rep in range(1, args.repeat + 1):
            for queued in [c == "queue" for c in configs]:
                result["reps"].append(rush_once(args, world, queued, rep))
                r = result["reps"][-1]
                log(
                    f"{r['config']}: sold out {r['sold_out_after_opening_s']} s after the opening, settled "
                    f"{r['settled_s']} s, errors {r['errors']}, fairness {r['fairness']}, "
                    f"CPU/poll {r['web_cpu_ms_per_poll']} ms, oversold {r['oversold_seats']}"
                )
        result["status"] = "FAILED" if any(r["failures"] for r in result["reps"]) else "PASSED"
    out = write_result(result, args.out)
    print(f"{result['status']}: wrote {out}")
    return 0 if result["status"] == "PASSED" else 1


# --- Poll flood ---------------------------------------------------------------------------------------------------

WRK_SCRIPT = """
local tickets = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "%s", {["X-Queue-Ticket"] = tickets[(n %% #tickets) + 1]})
end
"""


async def join_all(port: int, performance: int, users: list[list[Any]]) -> list[dict[str, Any]]:
    """Every user joins (50 at a time): their answers, in order."""
    url = f"http://127.0.0.1:{port}/api/performances/{performance}/queue/"
    gate = asyncio.Semaphore(50)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def join(token: str) -> dict[str, Any]:
            async with gate, session.post(url, headers={"Authorization": f"Bearer {token}"}) as response:
                answer: dict[str, Any] = await response.json()
                return answer

        return list(await asyncio.gather(*(join(user[1]) for user in users)))


async def timed_booking(port: int, performance: int, token: str) -> dict[str, Any]:
    """An admitted user's seat map and booking, timed."""
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/api"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        t0 = time.monotonic()
        async with session.get(f"{base}/performances/{performance}/seats/", headers=headers) as response:
            seats = await response.json()
        t1 = time.monotonic()
        seat = next(s["id"] for s in seats if s["status"] == "AVAILABLE")
        async with session.post(f"{base}/reservations/", json={"seat_ids": [seat]}, headers=headers) as response:
            status = response.status
        t2 = time.monotonic()
    return {"seat_map_s": round(t1 - t0, 3), "booking_s": round(t2 - t1, 3), "booking_status": status}


def wrk_figures(output: str) -> dict[str, Any]:
    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)

    figures: dict[str, Any] = {"latency_ms": {}}
    for p in ("50", "75", "90", "99"):
        if found := re.search(rf"^\s+{p}(?:\.000)?%\s+(\S+)", output, re.M):
            figures["latency_ms"][f"p{p}"] = ms(found.group(1))
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    figures["polls_per_s"] = float(found.group(1)) if found else None
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_2xx"] = int(found.group(1)) if found else 0
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    figures["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, found.groups()), strict=True)) if found else {}
    )
    return figures


def flood_once(args: argparse.Namespace, world: World) -> dict[str, Any]:
    data = populate(
        world,
        users=args.flood_users,
        fail_ratio=0,
        seats=0,
        label="flood",
        minutes=30,
        extra=["--rush-seats", "240", "--queue"],
    )
    performance, users = data["performance"], data["users"]
    log_dir = world.tmp / "logs" / "flood"
    log_dir.mkdir(parents=True)
    system = System(world, CONFIGS["ours"], args, log_dir)
    try:
        system.start()
        system.wait_ready()
        answers = asyncio.run(join_all(system.port, performance, users))
        admitted = [users[i] for i, a in enumerate(answers) if a.get("admitted")]
        waiting = [a["ticket"] for a in answers if not a.get("admitted")]
        log(f"poll flood: {len(admitted)} admitted, {len(waiting)} waiting; wrk for {args.flood_seconds} s")
        script = Path(world.tmp / "flood.lua")
        path = f"/api/performances/{performance}/queue/"
        script.write_text(WRK_SCRIPT % (", ".join(f'"{t}"' for t in waiting), path))
        sampler = CpuSampler({proc.pid: n for n, proc in system.procs.items()}, f"{world.run}_")
        sampler.start()
        mark = sampler.mark()
        wrk = subprocess.Popen(
            ["wrk", "-t2", f"-c{args.flood_connections}", f"-d{args.flood_seconds}s", "--latency", "-s", str(script),
             f"http://127.0.0.1:{system.port}{path}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        time.sleep(args.flood_seconds / 2)
        booking = asyncio.run(timed_booking(system.port, performance, admitted[0][1]))
        output, _ = wrk.communicate(timeout=args.flood_seconds + 60)
        cpu = sampler.since(mark, 1)
        sampler.stopping.set()
    finally:
        system.stop()
    figures = wrk_figures(output)
    polls = (figures["polls_per_s"] or 0) * args.flood_seconds
    web_s = cpu["groups_s"].get("web", 0.0)
    result = {
        **figures,
        "admitted_booking": booking,
        "web_cpu_ms_per_poll": round(1000 * web_s / polls, 4) if polls else None,
        "wrk_output": output,
    }
    failures = []
    failures += [] if (figures["polls_per_s"] or 0) >= 5000 else ["fewer than 5,000 polls/s"]
    failures += [] if (figures["latency_ms"].get("p99") or 1e9) <= 250 else ["poll p99 above 250 ms"]
    failures += [f"{figures['non_2xx']} non-2xx answers"] if figures["non_2xx"] else []
    failures += [f"socket errors {figures['socket_errors']}"] if any(figures["socket_errors"].values()) else []
    failures += [] if booking["booking_status"] == 202 and booking["booking_s"] <= 2 else ["the admitted booking"]
    result["failures"] = failures
    return result


def flood_main(args: argparse.Namespace, argv: list[str]) -> int:
    if not shutil.which("wrk"):
        print("poll-flood needs wrk (apt-get install wrk)")
        return 2
    world = new_world(args)
    result = new_result("poll-flood", argv, {k: v for k, v in vars(args).items() if not k.startswith("internal")})
    with interruptible(result, world, args.keep):
        world.create()
        result["flood"] = flood_once(args, world)
        flood = result["flood"]
        log(
            f"poll flood: {flood['polls_per_s']} polls/s, latency {flood['latency_ms']}, non-2xx {flood['non_2xx']}, "
            f"socket errors {flood['socket_errors']}, admitted booking {flood['admitted_booking']}, "
            f"CPU/poll {flood['web_cpu_ms_per_poll']} ms"
        )
        result["status"] = "FAILED" if flood["failures"] else "PASSED"
    out = write_result(result, args.out)
    print(f"{result['status']}: wrote {out}")
    return 0 if result["status"] == "PASSED" else 1
