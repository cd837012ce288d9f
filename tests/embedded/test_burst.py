"""A burst of events on the embedded default: several writer processes, two consumer processes."""

from __future__ import annotations

import re
import sys

from tests.conftest import saga
from tests.saga.conftest import wait_for
from ticketing.outbox.models import DeadLetter, InboxMessage, OutboxMessage, OutboxState
from ticketing.payments.models import Wallet

from .conftest import EmbeddedStack

pytestmark = [saga]

WRITERS = 4
EVENTS_PER_WRITER = 250
FIRST_USER_ID = 1_000_000


def writer(*, first: int) -> list[str]:
    return [sys.executable, "-m", "tests.embedded.writer", "--first", str(first), "--count", str(EVENTS_PER_WRITER)]


def test_a_burst_from_four_writers_reaches_two_consumers_with_nothing_lost(healthy: EmbeddedStack) -> None:
    # given four writer processes, each committing 250 events (relayed by the relay process, woken by
    # NOTIFY, and beat's safety net racing it for the rows)
    total = WRITERS * EVENTS_PER_WRITER
    ids = range(FIRST_USER_ID, FIRST_USER_ID + total)
    writers = [healthy.spawn(f"writer-{n}", writer(first=ids[n * EVENTS_PER_WRITER])) for n in range(WRITERS)]

    # when they all ran
    assert [writer.wait(timeout=300) for writer in writers] == [0] * WRITERS

    # then the two payments consumers opened a wallet for every event, and every outbox row is sent
    wallets = Wallet.objects.using("payments").filter(user_id__in=ids)
    wait_for(lambda: wallets.count() == total, timeout=180, what=f"{total} wallets")
    pending = OutboxMessage.objects.using("default").exclude(state=OutboxState.SENT)
    wait_for(lambda: not pending.exists(), timeout=30, what="every outbox row to be marked sent")
    assert OutboxMessage.objects.using("default").count() == total
    # each event was handled once (the inbox), none was given up
    assert InboxMessage.objects.using("payments").filter(event="user-registered").count() == total
    assert not DeadLetter.objects.using("payments").exists()
    # and both consumer processes took their share from the one queue
    handled = {
        name: len(re.findall(r"payments: consumed user-registered", healthy.log(name)))
        for name in ("payments", "payments-2")
    }
    assert all(handled.values()), handled
    assert sum(handled.values()) >= total
