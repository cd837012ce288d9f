"""One trace per saga: the booking request, the relay's hops and both consumers, across processes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import saga
from tests.observability.span_file import read_spans, span_record
from tests.saga.conftest import book, settled, wait_for
from ticketing.outbox.models import OutboxMessage

pytestmark = [saga]

# The saga's causal chain when the payment is refused (its compensation): each step a descendant of the one before.
COMPENSATION_CHAIN = (
    "POST",  # the booking request (Django's span, in this process)
    "outbox relay concert-reserve",
    "consume concert-reserve",
    "outbox relay payment-fail",
    "consume payment-fail",
)


def descends(span: dict[str, Any], ancestor: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> bool:
    parent = span["parent_id"]
    while parent is not None:
        if parent == ancestor["span_id"]:
            return True
        parent = by_id[parent]["parent_id"] if parent in by_id else None
    return False


def first_named(spans: list[dict[str, Any]], prefix: str) -> dict[str, Any] | None:
    return next((span for span in sorted(spans, key=lambda s: s["start"]) if span["name"].startswith(prefix)), None)


def test_a_compensated_saga_is_one_trace_with_its_steps_in_causal_order(
    traced_workers: Path,
    test_process_spans: InMemorySpanExporter,
    make_user: Any,
    make_seats: Any,
    fund: Any,
    client_for: Any,
) -> None:
    # given a user who cannot pay for the seat, so the saga must compensate
    user = make_user()
    fund(user.id, 10_000)
    (seat,) = make_seats(price=50_000)

    # when the user books it and the saga ends
    reservation = settled(book(client_for(user), seat.id).json()["id"])
    assert reservation.status == "SYSTEM_CANCELED"

    # then the request, both relay hops and both consumers are spans of one trace, in causal order
    request_spans = [span_record(span) for span in test_process_spans.get_finished_spans()]
    request = first_named(request_spans, "POST")
    assert request is not None, [span["name"] for span in request_spans]

    def saga_spans() -> list[dict[str, Any]] | None:
        # A parent span ends (and is written) after its child: wait until every parent named is in the file too.
        spans = [span for span in read_spans(traced_workers) if span["trace_id"] == request["trace_id"]]
        written = {span["span_id"] for span in [*request_spans, *spans]}
        complete = all(span["parent_id"] in written for span in spans if span["parent_id"])
        return spans if complete and first_named(spans, "consume payment-fail") else None

    spans = [*request_spans, *wait_for(saga_spans, timeout=10, what="the saga's spans up to the concerts consumer's")]
    by_id = {span["span_id"]: span for span in spans}
    chain = [first_named(spans, name) for name in COMPENSATION_CHAIN]
    assert all(chain), {name: bool(step) for name, step in zip(COMPENSATION_CHAIN, chain, strict=True)}
    for earlier, later in itertools.pairwise(chain):
        assert later is not None and earlier is not None
        assert descends(later, earlier, by_id), f"{later['name']} does not descend from {earlier['name']}"
        assert later["start"] >= earlier["start"]
    assert len({step["pid"] for step in chain if step}) >= 3  # the request, the payments and concerts workers

    # and every outbox row of the saga carries that trace
    rows = [
        *OutboxMessage.objects.using("concerts").filter(correlation_id=str(reservation.id)),
        *OutboxMessage.objects.using("payments").filter(correlation_id=str(reservation.id)),
    ]
    assert {row.traceparent.split("-")[1] for row in rows} == {request["trace_id"]}


def test_a_consumer_span_of_another_saga_is_another_trace(
    traced_workers: Path,
    test_process_spans: InMemorySpanExporter,
    make_user: Any,
    make_seats: Any,
    fund: Any,
    client_for: Any,
) -> None:
    # given two users booking a seat each
    first, second = make_user(), make_user()
    for user in (first, second):
        fund(user.id, 100_000)
    seats = make_seats(count=2, price=10_000)

    # when both book
    ids = [settled(book(client_for(u), s.id).json()["id"]).id for u, s in zip((first, second), seats, strict=True)]

    # then each saga's consumer spans are in a trace of their own
    def consumer_traces() -> dict[str, set[str]] | None:
        traces: dict[str, set[str]] = {}
        for span in read_spans(traced_workers):
            if span["name"] == "consume payment-success":
                traces.setdefault(span["attributes"]["ticketing.correlation_id"], set()).add(span["trace_id"])
        return traces if all(str(i) in traces for i in ids) else None

    traces = wait_for(consumer_traces, timeout=10, what="both sagas' spans")
    assert len(traces[str(ids[0])] | traces[str(ids[1])]) == 2
