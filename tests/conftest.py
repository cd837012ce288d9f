"""Fixtures shared by every test: real PostgreSQL (three databases), RabbitMQ (a vhost per run), Redis.

`make test` gives each run databases, a vhost and a cache key prefix of its own (see the Makefile),
so two runs on one machine never collide. Saga tests start real Celery workers as processes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from ticketing import devservers
from ticketing.accounts.models import User
from ticketing.concerts import waiting_room
from ticketing.concerts.models import Concert, Performance, Seat
from ticketing.payments.models import Wallet

ROOT = Path(__file__).resolve().parent.parent
WORKER_APP_NAME = "ticketing-test-worker"
PASSWORD = "correct-horse-battery-9"
_counter = itertools.count(1)


def embedded_default() -> bool:
    """Whether this run has the `make run` default: no database, Redis or broker URL, so its own servers."""
    names = [f"{service.upper()}_DATABASE_URL" for service in settings.SERVICE_DATABASES]
    return not any(os.environ.get(name) for name in [*names, "REDIS_URL", "CELERY_BROKER_URL"])


# tests/embedded runs on the embedded default (`make pytest-embedded`), everything else on PostgreSQL,
# RabbitMQ and Redis (`make pytest`).
collect_ignore = [] if embedded_default() else ["embedded"]

# Every database test may touch all three databases.
all_databases = pytest.mark.django_db(databases="__all__")
# Saga tests commit for real, so that worker processes see the rows.
saga = pytest.mark.django_db(transaction=True, databases="__all__")


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}_{uuid.uuid4().hex[:6]}"


# --- Broker ------------------------------------------------------------------------------------------


def broker_vhost() -> str | None:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("amqp"):
        return None
    vhost = urlsplit(url).path.lstrip("/")
    return vhost if vhost.startswith("ticketing_test_") else None


@pytest.fixture(scope="session", autouse=True)
def rabbitmq_vhost() -> Iterator[None]:
    """A RabbitMQ vhost of this run's own, dropped at the end."""
    vhost = broker_vhost()
    if vhost is None:
        yield
        return
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True)


# --- Databases ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_blocker: Any) -> Iterator[None]:
    with test_databases(django_db_blocker):
        yield


@contextmanager
def test_databases(django_db_blocker: Any) -> Iterator[None]:
    """Create and migrate all three test databases (whatever the first test asks for), drop them after."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases=set(connections), serialized_aliases=set())
    yield
    with django_db_blocker.unblock():
        for connection in connections.all():
            connection.close()
        teardown_databases(config, verbosity=0)


def database_url(alias: str) -> str:
    """The URL of the test database behind ``alias``, for worker processes."""
    service = {v: k for k, v in settings.SERVICE_DATABASES.items()}[alias]
    parts = urlsplit(os.environ.get(f"{service.upper()}_DATABASE_URL") or devservers.database_url(service))
    return urlunsplit(parts._replace(path="/" + connections[alias].settings_dict["NAME"]))


# --- Workers -----------------------------------------------------------------------------------------


class Workers:
    """Celery workers (one per service queue), the relay and beat: separate processes on the test databases."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            **{f"{s.upper()}_DATABASE_URL": database_url(a) for s, a in settings.SERVICE_DATABASES.items()},
            "RESERVATION_HOLD_SECONDS": str(settings.RESERVATION_HOLD_SECONDS),
            "OUTBOX_CLAIM_LEASE_SECONDS": str(settings.OUTBOX_CLAIM_LEASE_SECONDS),
            "PGAPPNAME": WORKER_APP_NAME,  # lets chaos tests find (and terminate) the workers' connections
        }

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Any other process of the system (a relay, say), with the workers' environment."""
        log = (self.log_dir / f"{name}.log").open("ab")
        return subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def command(self, name: str) -> list[str]:
        if name == "relay":
            return [sys.executable, "manage.py", "relay"]
        celery = [sys.executable, "-m", "celery", "-A", "celery_app"]
        if name == "beat":
            schedule = self.log_dir / "beat-schedule"
            return [*celery, "beat", "-S", "celery.beat:PersistentScheduler", "-s", str(schedule), "-l", "WARNING"]
        return [
            *celery,
            "worker",
            "-Q",
            name,
            "-n",
            f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--concurrency",
            "2",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
        ]

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, name: str) -> subprocess.Popen[bytes]:
        marker = {"beat": "", "relay": "relaying"}.get(name, " ready.")
        ready_before = self.log(name).count(marker)
        process = self.processes[name] = self.spawn(name, self.command(name))
        if marker:
            deadline = time.monotonic() + 30
            while self.log(name).count(marker) <= ready_before:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"worker {name} did not start:\n{self.log(name)[-3000:]}")
                time.sleep(0.1)
        return process

    def kill(self, name: str) -> None:
        """kill -9 the worker's whole process group: main process and pool children alike."""
        process = self.processes.pop(name)
        subprocess.run(["pkill", "-9", "-P", str(process.pid)], check=False)
        process.kill()
        process.wait(timeout=10)

    def stop(self, name: str) -> None:
        """A warm shutdown; a worker that is still finishing after 30 s (a loaded machine) is killed."""
        process = self.processes.pop(name)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            subprocess.run(["pkill", "-9", "-P", str(process.pid)], check=False)
            process.kill()
            process.wait(timeout=10)

    @contextmanager
    def paused(self, *names: str) -> Iterator[None]:
        """Without these processes for a while (say, to be the only relay)."""
        for name in names:
            self.stop(name)
        try:
            yield
        finally:
            for name in names:
                self.start(name)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


@pytest.fixture(scope="session")
def workers(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    if broker_vhost() is None:
        pytest.fail("saga tests need RabbitMQ: run them through `make test` (CELERY_BROKER_URL=amqp://...)")
    pool = Workers(tmp_path_factory.mktemp("workers"))
    for name in ("accounts", "concerts", "payments", "relay", "beat"):
        pool.start(name)
    yield pool
    pool.stop_all()
    shutil.rmtree(pool.log_dir, ignore_errors=True)


# --- Redis -------------------------------------------------------------------------------------------


DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # a closed port: Redis down, while the real one is left alone


@contextmanager
def waiting_room_down() -> Iterator[None]:
    """The waiting room's Redis unreachable for a while."""
    waiting_room._client.cache_clear()
    waiting_room._script.cache_clear()
    try:
        with override_settings(QUEUE_REDIS_URL=DEAD_REDIS_URL):
            yield
    finally:
        waiting_room._client.cache_clear()
        waiting_room._script.cache_clear()


@pytest.fixture
def redis_down() -> Iterator[None]:
    """The waiting room's Redis unreachable for the whole test."""
    with waiting_room_down():
        yield


@pytest.fixture
def cache_redis_down() -> Iterator[None]:
    """REDIS_URL's Redis stopped: the cache (throttles, login delay) and the waiting room both unreachable."""
    dead_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": DEAD_REDIS_URL,
        "KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "ticketing"),
    }
    with override_settings(CACHES={"default": dead_cache}), waiting_room_down():
        yield


# --- Domain factories --------------------------------------------------------------------------------


@pytest.fixture
def make_user() -> Callable[..., User]:
    def make(username: str | None = None) -> User:
        user = User(username=username or unique("user"))
        user.set_password(PASSWORD)
        user.save(using="default")
        return user

    return make


@pytest.fixture
def make_seats() -> Callable[..., list[Seat]]:
    def make(count: int = 1, price: int = 50_000, starts_in: timedelta = timedelta(days=30)) -> list[Seat]:
        concert = Concert.objects.using("concerts").create(title=unique("concert"))
        performance = Performance.objects.using("concerts").create(
            concert=concert, starts_at=timezone.now() + starts_in, venue="Test Hall"
        )
        return Seat.objects.using("concerts").bulk_create(
            Seat(performance=performance, label=f"A-{n}", grade="A", price=price) for n in range(1, count + 1)
        )

    return make


@pytest.fixture
def make_performance() -> Callable[..., list[Seat]]:
    """Seats of a new performance with a sales opening time and/or a waiting room."""

    def make(
        count: int = 4,
        price: int = 50_000,
        sales_open_in: timedelta | None = None,
        queue: bool = False,
        starts_in: timedelta = timedelta(days=30),
    ) -> list[Seat]:
        concert = Concert.objects.using("concerts").create(title=unique("concert"))
        performance = Performance.objects.using("concerts").create(
            concert=concert,
            starts_at=timezone.now() + starts_in,
            venue="Test Hall",
            sales_open_at=None if sales_open_in is None else timezone.now() + sales_open_in,
            queue=queue,
        )
        return Seat.objects.using("concerts").bulk_create(
            Seat(performance=performance, label=f"A-{n}", grade="A", price=price) for n in range(1, count + 1)
        )

    return make


@pytest.fixture
def fund() -> Callable[[int, int], Wallet]:
    from ticketing.payments.services import wallet_top_up

    def top_up(user_id: int, amount: int) -> Wallet:
        return wallet_top_up(user_id=user_id, amount=amount)

    return top_up


def access_token(user: User) -> str:
    return str(AccessToken.for_user(user))


def new_client() -> APIClient:
    """A client with an address of its own, so login throttling never leaks between tests."""
    address = uuid.uuid4().bytes
    return APIClient(REMOTE_ADDR=f"10.{address[0]}.{address[1]}.{address[2]}")


@pytest.fixture
def api() -> APIClient:
    return new_client()


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    def authenticated(user: User) -> APIClient:
        client = new_client()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
        return client

    return authenticated
