"""The whole stack of the embedded default killed at once (SIGKILL: PostgreSQL, Redis, the web server,
workers, relay, beat, the writers) in the middle of a burst and of sagas, then started again as
`make run` would: every saga settles, no event is lost, none is handled twice."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from django.db import connections
from django.db.models import Count

from tests.conftest import saga
from tests.saga.conftest import settled, wait_for
from ticketing.outbox.models import DeadLetter, InboxMessage, OutboxMessage, OutboxState
from ticketing.payments.models import Payment, Wallet

from .conftest import EmbeddedStack, Servers, post

pytestmark = [saga]

WRITERS = 3
EVENTS_PER_WRITER = 200
FIRST_USER_ID = 2_000_000
BOOKINGS = 12
PRICE = 50_000


def writer(first: int) -> list[str]:
    return [sys.executable, "-m", "tests.embedded.writer", "--first", str(first), "--count", str(EVENTS_PER_WRITER)]


def test_a_stack_killed_mid_burst_settles_every_saga_after_a_restart_with_nothing_lost_or_doubled(
    audited: None,
    healthy: EmbeddedStack,
    servers: Servers,
    make_user: Any,
    make_seats: Any,
    fund: Any,
    http_for: Any,
) -> None:
    # given sagas under way (every other user cannot pay) and writers committing a burst of events
    users = [make_user() for _ in range(BOOKINGS)]
    for n, user in enumerate(users):
        fund(user.id, PRICE if n % 2 == 0 else PRICE // 2)
    seats = make_seats(count=BOOKINGS, price=PRICE)
    pairs = zip(users, seats, strict=True)
    accepted = [post(http_for(user), healthy, "/api/reservations/", {"seat_id": seat.id}) for user, seat in pairs]
    assert [r.status_code for r in accepted] == [202] * BOOKINGS, [r.text for r in accepted]
    ids = range(FIRST_USER_ID, FIRST_USER_ID + WRITERS * EVENTS_PER_WRITER)
    writers = [healthy.spawn(f"crash-writer-{n}", writer(ids[n * EVENTS_PER_WRITER])) for n in range(WRITERS)]
    wallets = Wallet.objects.using("payments").filter(user_id__in=ids)
    wait_for(lambda: wallets.count() >= 20, timeout=120, what="the burst to be under way")

    # when everything is killed at once, and started again (servers first, as `make run` does)
    for process in writers:
        process.kill()
    healthy.kill_all()
    servers.kill()
    connections.close_all()
    servers.start()
    healthy.start_all()

    # then every saga settles, as its wallet decides
    outcomes = [settled(r.json()["id"], timeout=120).status for r in accepted]
    assert outcomes == ["CONFIRMED" if n % 2 == 0 else "SYSTEM_CANCELED" for n in range(BOOKINGS)]
    # every event committed before the kill reached its consumer once: a wallet each, an inbox row each
    outbox = OutboxMessage.objects.using("default")
    committed = outbox.filter(event="user-registered", aggregate_id__in=[str(i) for i in ids])
    total = committed.count()
    wait_for(lambda: wallets.count() == total, timeout=180, what=f"{total} wallets")
    pending = outbox.exclude(state=OutboxState.SENT)
    wait_for(lambda: not pending.exists(), timeout=60, what="every outbox row to be marked sent")
    event_ids = list(committed.values_list("event_id", flat=True))
    assert InboxMessage.objects.using("payments").filter(event_id__in=event_ids).count() == total
    assert not DeadLetter.objects.using("payments").exists()
    # and nothing was charged twice: one payment per booking at most, balances as the outcomes say
    reservation_ids = [r.json()["id"] for r in accepted]
    payments = Payment.objects.using("payments").filter(reservation_id__in=reservation_ids)
    assert not payments.values("reservation_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    balances = Counter(
        Wallet.objects.using("payments").filter(user_id__in=[u.id for u in users]).values_list("balance", flat=True)
    )
    assert balances == {0: BOOKINGS // 2, PRICE // 2: BOOKINGS // 2}
