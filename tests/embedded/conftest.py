"""The embedded default, as `make run` starts it with no configuration: three SQLite files and the
embedded broker under TICKETING_VAR_DIR, the web server, Celery workers, relay and beat as processes.

`make pytest-embedded` runs this suite without any *_DATABASE_URL, CELERY_BROKER_URL or REDIS_URL.
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

from tests.conftest import Workers, access_token, embedded_default
from tests.saga.conftest import call_command_fails, wait_for
from ticketing.accounts.models import User

# Besides the three service queues: a second payments worker, so two consumer processes take messages
# from one queue folder at once.
CONSUMERS = {"accounts": "accounts", "concerts": "concerts", "payments": "payments", "payments-2": "payments"}
FATAL = re.compile(r"CRITICAL|Unrecoverable error|WorkerLostError")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedStack(Workers):
    """The workers of tests/conftest.py, two consumers on the payments queue, and the web server."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The waiting room's in-memory server (as in the Procfile), on a port of this run's own.
        self.env["QUEUE_EMBEDDED_PORT"] = str(free_port())

    def command(self, name: str) -> list[str]:
        if name == "web":
            gunicorn = [sys.executable, "-m", "gunicorn", "ticketing.wsgi", "--workers", "2"]
            return [*gunicorn, "--bind", f"127.0.0.1:{self.port}", "--access-logfile", "-"]
        if name == "waitingroom":
            return [sys.executable, "manage.py", "waiting_room_server"]
        return super().command(CONSUMERS.get(name, name))

    def start(self, name: str) -> subprocess.Popen[bytes]:
        ready = {"web": self.answers, "waitingroom": lambda: "in-memory Redis protocol" in self.log(name)}.get(name)
        if ready is None:
            return super().start(name)
        process = self.processes[name] = self.spawn(name, self.command(name))
        wait_for(lambda: ready() or process.poll() is not None, timeout=30, what=f"the {name} process")
        if process.poll() is not None:
            raise RuntimeError(f"the {name} process did not start:\n{self.log(name)[-3000:]}")
        return process

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
def stack(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    pool = EmbeddedStack(tmp_path_factory.mktemp("stack"))
    for name in ("waitingroom", *CONSUMERS, "relay", "beat", "web"):
        pool.start(name)
    yield pool
    pool.stop_all()
    shutil.rmtree(pool.log_dir, ignore_errors=True)


@pytest.fixture
def healthy(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    """The stack, checked after the test: no process died, none logged a fatal error, nothing set aside."""
    yield stack
    assert stack.casualties() == {}
    assert list((settings.BROKER_DIR / "unreadable").iterdir()) == []


@pytest.fixture
def audited(healthy: EmbeddedStack) -> Iterator[None]:
    """The saga invariants hold across the three databases once the test's sagas are done."""
    yield
    wait_for(lambda: not call_command_fails("audit_sagas", "--idle"), timeout=15, what="the audit to pass")


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
