"""The waiting room's fast path on the `make run` default: the web front answers a poll from the queue ticket."""

from __future__ import annotations

from typing import Any

from tests.conftest import saga

from .conftest import EmbeddedStack

pytestmark = [saga]


def test_a_poll_with_the_queue_ticket_alone_answers_the_place_and_the_pace(
    healthy: EmbeddedStack, make_user: Any, make_performance: Any, http_for: Any
) -> None:
    # given a queued performance on sale now, admitting one at a time, and two users who joined
    (seat, *_) = make_performance(queue=True)
    queue = f"{healthy.url}/api/performances/{seat.performance_id}/queue/"
    joined = [http_for(make_user()).post(queue, timeout=30) for _ in range(2)]
    assert [(j.status_code, j.json()["position"]) for j in joined] == [(200, 0), (200, 1)], [j.text for j in joined]

    # when the second polls with its queue ticket and no other credential
    ticket = joined[1].json()["ticket"]
    polled = [http_for(make_user()).get(queue, headers={"Authorization": "", "X-Queue-Ticket": ticket}) for _ in "ab"]

    # then the web front answers its place and when to ask again; a forged ticket is not believed
    assert [(p.status_code, p.json()["position"]) for p in polled] == [(200, 1), (200, 1)]
    assert all(p.json()["poll_after_seconds"] >= 0.9 for p in polled)
    forged = http_for(make_user()).get(queue, headers={"Authorization": "", "X-Queue-Ticket": ticket[:-2] + "xx"})
    assert forged.status_code in (401, 403)
