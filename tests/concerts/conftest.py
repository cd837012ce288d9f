"""Fixtures of the waiting room's tests: a room of its own, a Redis of its own, the web front in-process."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connections
from django.test import override_settings

from ticketing.concerts import waiting_room
from ticketing.front import asgi
from ticketing.front import queue as front_queue


@pytest.fixture
def room() -> int:
    """A performance id no other test uses, for tests of the waiting room alone (no database row)."""
    return 10**12 + secrets.randbelow(10**12)


def forget_clients() -> None:
    """Every cached Redis client and shared state: the next call connects to the settings' Redis afresh."""
    for cached in (waiting_room._client, waiting_room._script, waiting_room._aclient, waiting_room._ascript):
        cached.cache_clear()
    front_queue.states.entries.clear()
    front_queue.performances.entries.clear()


@dataclass
class OwnRedis:
    """A throwaway redis-server with AOF on (every write fsynced), which a test may kill and restart."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--maxmemory-policy", "noeviction"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: no shutdown, no last save; what survives is what the AOF had."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not shutil.which("redis-server"):
        pytest.fail("this test needs the redis-server binary (apt-get install redis-server)")
    server = OwnRedis(tmp_path, free_port())
    server.start()
    forget_clients()
    with override_settings(QUEUE_REDIS_URL=server.url):
        yield server
    forget_clients()
    if server.process and server.process.poll() is None:
        server.process.terminate()
        server.process.wait(timeout=10)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    def json(self) -> Any:
        return self.body


class Front:
    """The web front's ASGI application, called in-process on one event loop (as one worker runs it).

    The loop runs in a thread of its own: Playwright's sync API, once started in this session, leaves
    its own loop marked as running in the main thread, where no second loop may run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="front-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, client: str = "10.0.0.1"
    ) -> Answer:
        return self.run(self.call(method, path, headers or {}, client))

    async def call(self, method: str, path: str, headers: dict[str, str], client: str) -> Answer:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()],
            "client": (client, 50000),
            "server": ("testserver", 80),
        }
        sent: list[dict[str, Any]] = []
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asgi.application(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        headers_out: dict[str, str] = {}
        for key, value in start["headers"]:
            headers_out[key.decode().lower()] = value.decode()
        return Answer(start["status"], headers_out, json.loads(data) if data.strip() else None)

    def close(self) -> None:
        self.run(waiting_room._aclient().aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        close_django_threads()


def close_django_threads() -> None:
    """Close the database connections of the threads that ran Django for the front (the test databases
    are dropped at the end, which PostgreSQL refuses while a connection is open)."""
    executor = asgi.django_asgi.executor
    threads = len(getattr(executor, "_threads", ())) or 1
    barrier = threading.Barrier(threads, timeout=10)

    def close() -> None:
        connections.close_all()
        barrier.wait()  # holds this thread, so that each of the pool's threads runs one close

    for future in [executor.submit(close) for _ in range(threads)]:
        future.result(timeout=15)
    front_queue.db_thread.submit(connections.close_all).result(timeout=15)


@pytest.fixture
def front() -> Iterator[Front]:
    forget_clients()
    app = Front()
    yield app
    app.close()
    forget_clients()
