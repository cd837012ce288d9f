"""Faults injected while bookings flow; every saga must settle and every invariant hold (A6)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

from django.db import connections, transaction
from django.test import override_settings

from tests.conftest import WORKER_APP_NAME, broker_vhost, saga
from tests.saga.conftest import settled
from ticketing.concerts.services import reservation_create
from ticketing.outbox.models import OutboxMessage, OutboxState
from ticketing.outbox.relay import replay

from .conftest import FULL, pause, scaled, settle_and_audit

pytestmark = [saga]
PROCESSES = ("accounts", "concerts", "payments", "relay")


def relay_process(workers: Any, mode: str, alias: str) -> subprocess.Popen[bytes]:
    return workers.spawn(f"relay-{alias}", [sys.executable, "-m", "tests.chaos.relay_process", mode, alias])


def test_workers_killed_at_random_moments(workers: Any, load: Any) -> None:
    kills = int(scaled(1, 20))
    with load(seconds=scaled(6, 120)) as bookings:
        for _ in range(kills):
            for name in PROCESSES:
                pause(0.2, 1.5)
                workers.kill(name)
                workers.start(name)
    fault = f"kill -9 a worker of each queue and the relay process, {kills}x each"
    settle_and_audit("workers killed", bookings, fault)


@override_settings(OUTBOX_FAST_PATH=False)
def test_relay_killed_between_publish_and_mark_sent(workers: Any, load: Any) -> None:
    deaths = 0
    with workers.paused("relay"), load(seconds=scaled(8, 150), rate=10) as bookings:
        while deaths < scaled(5, 100) and not bookings.stopping.is_set():
            relay = relay_process(workers, "die", "concerts")
            deaths += relay.wait(timeout=60) == -9
            if not bookings.thread.is_alive():
                break
    figures = settle_and_audit(
        "relay killed", bookings, f"kill -9 the relay after publish, before mark-sent, {deaths}x"
    )
    assert deaths > 0
    assert figures["sagas settled"] == figures["bookings accepted"]


def test_broker_goes_away(workers: Any, load: Any) -> None:
    vhost = broker_vhost()
    with load(seconds=scaled(8, 60)) as bookings:
        pause(1, 2)
        if FULL:  # the chaos run only: stop the whole node for 30 s
            subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True)
            time.sleep(30)
            subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True)
        else:  # inside `make test`: cut every connection of this run's vhost, repeatedly
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                subprocess.run(
                    ["rabbitmqctl", "-q", "close_all_connections", "-p", str(vhost), "chaos"],
                    check=False,
                    capture_output=True,
                )
    fault = "RabbitMQ stopped for 30 s" if FULL else "all broker connections closed, repeatedly, for 5 s"
    settle_and_audit("broker outage", bookings, fault, timeout=300)


def test_worker_database_connections_terminated(workers: Any, load: Any) -> None:
    terminated = 0
    with load(seconds=scaled(8, 90)) as bookings:
        while bookings.thread.is_alive():
            pause(1, 3)
            with connections["default"].cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                    [WORKER_APP_NAME],
                )
                terminated += cursor.fetchone()[0]
    settle_and_audit("connections terminated", bookings, f"pg_terminate_backend of {terminated} worker connections")
    assert terminated > 0


def test_every_message_delivered_twice(workers: Any, load: Any) -> None:
    replayed: set[tuple[str, int]] = set()
    with load(seconds=scaled(8, 90)) as bookings:
        while bookings.thread.is_alive():
            time.sleep(0.3)
            for alias in ("default", "concerts", "payments"):
                sent = OutboxMessage.objects.using(alias).filter(state=OutboxState.SENT).values_list("id", flat=True)
                fresh = [pk for pk in sent if (alias, pk) not in replayed]
                replay(using=alias, ids=fresh)
                replayed.update((alias, pk) for pk in fresh)
    settle_and_audit("duplicates", bookings, f"every event published twice ({len(replayed)} events)")
    assert replayed


@override_settings(OUTBOX_FAST_PATH=False)
def test_three_relays_at_once(workers: Any, load: Any) -> None:
    relays = [relay_process(workers, "loop", alias) for alias in ("concerts", "payments") for _ in range(3)]
    try:
        with load(seconds=scaled(8, 90)) as bookings:
            bookings.thread.join()
        settle_and_audit("three relays", bookings, "three relays per database at once")
    finally:
        for relay in relays:
            relay.kill()
            relay.wait()


def test_a_long_transaction_on_concerts_while_the_relay_works(
    workers: Any, load: Any, make_user: Any, make_seats: Any
) -> None:
    # A booking whose transaction stays open while later bookings commit: its outbox row gets a
    # smaller id than rows committed before it, and the relay must not skip it.
    (seat,) = make_seats()
    held: dict[str, int] = {}
    user_id = make_user().id

    def long_transaction() -> None:
        try:
            with transaction.atomic(using="concerts"):
                held["id"] = reservation_create(user_id=user_id, seat_id=seat.id).id
                time.sleep(scaled(4, 30))
        finally:
            connections["concerts"].close()

    with load(seconds=scaled(8, 60)) as bookings:
        slow = threading.Thread(target=long_transaction)
        slow.start()
        slow.join()
    assert settled(held["id"], timeout=30).status == "SYSTEM_CANCELED"  # no wallet: it settles, not skipped
    bookings.accepted.append(held["id"])
    settle_and_audit("long transaction", bookings, f"a {scaled(4, 30):.0f} s transaction on concerts")
