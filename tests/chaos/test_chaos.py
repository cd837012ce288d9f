"""Faults injected while bookings flow; every saga must settle and every invariant hold (A6)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import override_settings

from tests.conftest import WORKER_APP_NAME, Workers, saga
from tests.proxy import Proxy
from tests.saga.conftest import settled
from ticketing.concerts.services import reservation_create
from ticketing.outbox.models import OutboxMessage, OutboxState
from ticketing.outbox.relay import replay
from ticketing.payments.gateways import fault_clear, fault_inject

from .conftest import FULL, RESULTS, pause, scaled, settle_and_audit

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


def test_pool_processes_killed_mid_batch(workers: Any, load: Any) -> None:
    # Only the pool's children die: the worker sees its task's process lost and has the message (a batch
    # of events, under load) requeued; the batch comes back and is applied one event at a time.
    kills = 0
    with load(seconds=scaled(8, 120)) as bookings:
        while bookings.thread.is_alive():
            pause(0.2, 1.0)
            for name in ("concerts", "payments"):
                parent = workers.processes[name].pid
                kills += subprocess.run(["pkill", "-9", "-P", str(parent)], check=False).returncode == 0
    settle_and_audit(
        "pool processes killed", bookings, f"kill -9 the pool processes of concerts and payments, {kills}x"
    )
    assert kills > 0


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


@pytest.fixture
def broker_behind_proxy(workers: Workers, tmp_path: Path) -> Iterator[tuple[Workers, Proxy]]:
    """The system's processes of their own, talking to RabbitMQ through a proxy the test can cut.

    Their relays give a row three attempts with backoff capped at 2 s: a relay that spent attempts on
    an unreachable broker would mark rows dead a few seconds into the outage.
    """
    url = workers.env["CELERY_BROKER_URL"]
    proxy = Proxy.for_url(url)
    names = ("accounts", "concerts", "payments", "relay", "beat")
    with workers.paused(*names):
        own = Workers(tmp_path)
        own.env |= {"CELERY_BROKER_URL": proxy.url(url), "OUTBOX_MAX_ATTEMPTS": "3", "OUTBOX_BACKOFF_CAP_SECONDS": "2"}
        try:
            for name in names:
                own.start(name)
            yield own, proxy
        finally:
            proxy.restore()
            own.stop_all()
            proxy.close()


def test_broker_goes_away_for_longer_than_rows_used_to_survive(broker_behind_proxy: Any, load: Any) -> None:
    _, proxy = broker_behind_proxy
    outage = scaled(12, 30)
    with load(seconds=scaled(outage + 4, 60)) as bookings:
        pause(1, 2)
        if FULL:  # the chaos run only: stop the whole node
            subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True)
            time.sleep(outage)
            subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True)
        else:  # inside `make test`: only this test's processes lose the broker
            proxy.cut()
            time.sleep(outage)
            proxy.restore()
    how = "stopped" if FULL else "unreachable (proxy cut)"
    fault = f"RabbitMQ {how} for {outage:.0f} s; a row's attempts: 3, backoff cap 2 s"
    settle_and_audit("broker outage", bookings, fault, timeout=300)
    assert not OutboxMessage.objects.using("concerts").filter(state=OutboxState.DEAD).exists()


def test_the_outcome_check_catches_a_payment_path_that_fails_every_payment(workers: Any, load: Any) -> None:
    # given every charge fails (the gateway errs until the consumer gives up and fails the payment)
    fault_inject("error", times=1_000_000)
    try:
        with load(seconds=3, rate=5) as bookings:
            bookings.thread.join()

        # then the books balance and the audit is clean, yet the chaos check fails the run
        with pytest.raises(AssertionError, match="did not end as their users could afford"):
            settle_and_audit("every payment fails", bookings, "the gateway fails every charge")
    finally:
        fault_clear()
        if RESULTS and RESULTS[-1]["test"] == "every payment fails":
            RESULTS.pop()  # not a figure of the chaos run


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
    bookings.add(held["id"], affordable=False)
    settle_and_audit("long transaction", bookings, f"a {scaled(4, 30):.0f} s transaction on concerts")
