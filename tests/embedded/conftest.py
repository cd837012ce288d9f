"""The system as `make run` starts it with no configuration: its own PostgreSQL and Redis (ticketing.devservers,
data under TICKETING_VAR_DIR), Redis as the Celery broker, the web server, Celery workers, relay and beat
as processes.

`make pytest-embedded` runs this suite without any *_DATABASE_URL, CELERY_BROKER_URL or REDIS_URL, on
ports of its own (EMBEDDED_POSTGRES_PORT, EMBEDDED_REDIS_PORT), so that it never meets a `make run`.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connections

from tests.conftest import Workers, access_token, embedded_default, test_databases
from tests.saga.conftest import call_command_fails, wait_for
from ticketing import devservers
from ticketing.accounts.models import User

# Besides the three service queues: a second payments worker, so two consumer processes take messages
# from one queue at once.
CONSUMERS = {"accounts": "accounts", "concerts": "concerts", "payments": "payments", "payments-2": "payments"}
PROCESSES = (*CONSUMERS, "relay", "beat", "web")
FATAL = re.compile(r"CRITICAL|Unrecoverable error|WorkerLostError")
# One admitted at a time, so that the waiting room's test sees a place handed on.
QUEUE_ACTIVE_USERS = 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Servers:
    """PostgreSQL and Redis as `make run` starts them (the same code), which a test may kill and start again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: list[devservers.Server] = []

    def start(self) -> None:
        self.running = devservers.start_servers(self.root)
        assert all(server.process is not None for server in self.running), "servers of another run on these ports"

    def kill(self) -> None:
        for server in self.running:
            server.kill()
        self.running = []

    def stop(self) -> None:
        devservers.stop_servers(self.running)
        self.running = []


class EmbeddedStack(Workers):
    """The workers of tests/conftest.py, two consumers on the payments queue, and the web server."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env["QUEUE_ACTIVE_USERS"] = str(QUEUE_ACTIVE_USERS)

    def command(self, name: str) -> list[str]:
        if name == "web":  # as in the Procfile: the web front, two worker processes
            granian = [str(Path(sys.executable).parent / "granian"), "--interface", "asgi", "--workers", "2"]
            return [*granian, "--host", "127.0.0.1", "--port", str(self.port), "ticketing.front.asgi:application"]
        return super().command(CONSUMERS.get(name, name))

    def start(self, name: str) -> subprocess.Popen[bytes]:
        if name != "web":
            return super().start(name)
        process = self.processes[name] = self.spawn(name, self.command(name))
        wait_for(lambda: self.answers() or process.poll() is not None, timeout=30, what="the web server")
        if process.poll() is not None:
            raise RuntimeError(f"the web server did not start:\n{self.log(name)[-3000:]}")
        return process

    def start_all(self) -> None:
        for name in PROCESSES:
            self.start(name)

    def kill_all(self) -> None:
        for name in list(self.processes):
            self.kill(name)

    def answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/concerts/", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet, or still loading
            return False

    def casualties(self) -> dict[str, str]:
        """Processes that died or logged a fatal error, with the end of their log."""
        return {
            name: self.log(name)[-3000:]
            for name, process in self.processes.items()
            if process.poll() is not None or FATAL.search(self.log(name))
        }


@pytest.fixture(scope="session", autouse=True)
def embedded_environment() -> None:
    if not embedded_default():
        pytest.fail("tests/embedded runs on the embedded default: `make pytest-embedded`")


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    running = Servers(settings.VAR_DIR)
    running.start()
    yield running
    connections.close_all()
    running.stop()


@pytest.fixture(scope="session")
def django_db_setup(servers: Servers, django_test_environment: None, django_db_blocker: Any) -> Iterator[None]:
    """The test databases, on the PostgreSQL the suite started."""
    with test_databases(django_db_blocker):
        yield


@pytest.fixture(scope="session")
def stack(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    pool = EmbeddedStack(tmp_path_factory.mktemp("stack"))
    pool.start_all()
    yield pool
    pool.stop_all()
    shutil.rmtree(pool.log_dir, ignore_errors=True)


@pytest.fixture
def healthy(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    """The stack, checked after the test: no process died, none logged a fatal error."""
    yield stack
    assert stack.casualties() == {}


@pytest.fixture
def audited(healthy: EmbeddedStack) -> Iterator[None]:
    """The saga invariants hold across the three databases once the test's sagas are done."""
    yield
    wait_for(lambda: not call_command_fails("audit_sagas", "--idle"), timeout=30, what="the audit to pass")


@pytest.fixture
def http_for(stack: EmbeddedStack) -> Callable[[User], requests.Session]:
    """An HTTP session to the stack's web server, signed in as the user."""

    def session(user: User) -> requests.Session:
        client = requests.Session()
        client.headers["Authorization"] = f"Bearer {access_token(user)}"
        return client

    return session


def post(client: requests.Session, stack: EmbeddedStack, path: str, body: dict[str, Any]) -> requests.Response:
    return client.post(f"{stack.url}{path}", json=body, timeout=30)
