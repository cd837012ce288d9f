"""GET /metrics: what every process records, and the gauges read from the databases."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, all_databases, saga
from tests.observability.conftest import scrape
from tests.saga.conftest import book, settled, wait_for
from ticketing.outbox.models import DeadLetter, OutboxMessage, OutboxState


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@saga
def test_a_saga_counts_in_the_metrics_of_every_process_it_crossed(
    workers: Any, metrics_client: Any, make_user: Any, make_seats: Any, fund: Any, client_for: Any
) -> None:
    # given the counters as they stand, and a user who can pay
    before = scrape(metrics_client)
    user = make_user()
    fund(user.id, 100_000)
    (seat,) = make_seats(price=10_000)

    # when the user books and the saga confirms
    assert settled(book(client_for(user), seat.id).json()["id"]).status == "CONFIRMED"

    # then the web process, the relay and both workers have counted their part of it
    def counted() -> dict[Any, float] | None:
        after = scrape(metrics_client)
        consumed = ("ticketing_events_consumed_total", {"service": "concerts", "event": "payment-success"})
        grew = value(after, consumed[0], **consumed[1]) > value(before, consumed[0], **consumed[1])
        return after if grew else None

    after = wait_for(counted, timeout=10, what="the concerts consumer's counter")
    delta = {
        name: value(after, name, **labels) - value(before, name, **labels)
        for name, labels in [
            ("ticketing_sagas_started_total", {}),
            ("ticketing_sagas_finished_total", {"outcome": "CONFIRMED"}),
            ("ticketing_saga_duration_seconds_count", {}),
            ("ticketing_events_consumed_total", {"service": "payments", "event": "concert-reserve"}),
            ("ticketing_consumer_duration_seconds_count", {"service": "payments"}),
        ]
    }
    assert all(change >= 1 for change in delta.values()), delta
    published = ("ticketing_outbox_published_total", {"database": "concerts"})
    assert value(after, *published[:1], **published[1]) > value(before, *published[:1], **published[1])
    assert value(after, "ticketing_relay_batch_size_count") > value(before, "ticketing_relay_batch_size_count")


@all_databases
@override_settings(METRICS_GAUGE_SECONDS=0)
def test_the_outbox_gauges_show_backlog_age_and_dead_rows_per_database(metrics_client: Any) -> None:
    # given, in the payments database, a pending row two minutes old, a dead row and an open dead letter
    outbox = OutboxMessage.objects.using("payments")
    outbox.create(
        event="e", aggregate_id="1", correlation_id="c", payload={}, created_at=timezone.now() - timedelta(minutes=2)
    )
    outbox.create(event="e", aggregate_id="2", correlation_id="d", payload={}, state=OutboxState.DEAD)
    DeadLetter.objects.using("payments").create(
        event_id=uuid.uuid4(), event="e", correlation_id="c", envelope={}, error="x"
    )

    # when /metrics is scraped
    samples = scrape(metrics_client)

    # then the payments gauges say so
    assert value(samples, "ticketing_outbox_pending", database="payments") == 1
    assert value(samples, "ticketing_outbox_oldest_pending_age_seconds", database="payments") >= 120
    assert value(samples, "ticketing_outbox_dead", database="payments") == 1
    assert value(samples, "ticketing_dead_letters", database="payments") == 1


@all_databases
def test_the_query_backed_gauges_are_read_at_most_every_few_seconds(metrics_client: Any) -> None:
    # given a scrape that read the gauges, within METRICS_GAUGE_SECONDS of the next
    with override_settings(METRICS_GAUGE_SECONDS=0):
        first = scrape(metrics_client)
    with override_settings(METRICS_GAUGE_SECONDS=60):
        scrape(metrics_client)  # reads now, then keeps the answer for a minute
        OutboxMessage.objects.using("concerts").create(event="e", aggregate_id="1", correlation_id="c", payload={})

        # when scraped again at once
        second = scrape(metrics_client)

    # then the answer is the one kept, not a new query
    pending = value(first, "ticketing_outbox_pending", database="concerts")
    assert value(second, "ticketing_outbox_pending", database="concerts") == pending


@all_databases
def test_http_requests_are_counted_by_view_and_status(metrics_client: Any, api: Any) -> None:
    # given the counter of the concert list as it stands
    labels = {"view": "concert-list", "method": "GET", "status": "200"}
    before = value(scrape(metrics_client), "ticketing_http_requests_total", **labels)

    # when someone lists the concerts
    assert api.get("/api/concerts/").status_code == 200

    # then the request is counted under its route's name, with its latency
    samples = scrape(metrics_client)
    assert value(samples, "ticketing_http_requests_total", **labels) == before + 1
    assert value(samples, "ticketing_http_request_duration_seconds_count", view="concert-list") >= 1


@all_databases
def test_a_method_no_client_should_invent_is_counted_as_other(metrics_client: Any, api: Any) -> None:
    # given a method made up for the occasion
    invented = f"X{uuid.uuid4().hex[:8].upper()}"

    # when it is sent to the concert list
    api.generic(invented, "/api/concerts/")

    # then it made no series of its own: it counts as "other"
    samples = scrape(metrics_client)
    assert not any(dict(labels).get("method") == invented for _, labels in samples)
    assert any(
        name == "ticketing_http_requests_total" and dict(labels).get("method") == "other" for name, labels in samples
    )


def test_a_fresh_process_shows_the_known_outcomes_and_events_at_zero(tmp_path: Path) -> None:
    # given a process that starts and handles nothing, writing into a metrics directory of its own
    script = (
        "import django; django.setup()\n"
        "from prometheus_client import CollectorRegistry, generate_latest, multiprocess\n"
        "registry = CollectorRegistry(); multiprocess.MultiProcessCollector(registry)\n"
        "print(generate_latest(registry).decode())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "ticketing.settings"}
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout

    # then the series an alert or a rate() reads exist already, at 0
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(output)
        for sample in family.samples
    }
    expected = [
        ("ticketing_sagas_finished_total", {"outcome": outcome})
        for outcome in ("CONFIRMED", "SYSTEM_CANCELED", "CANCELED")
    ] + [
        ("ticketing_events_consumed_total", {"service": "payments", "event": "concert-reserve"}),
        ("ticketing_events_consumed_total", {"service": "concerts", "event": "payment-success"}),
        ("ticketing_events_duplicate_total", {"service": "concerts", "event": "payment-fail"}),
        ("ticketing_cache_fail_open_total", {"use": "throttle"}),
    ]
    not_at_zero = [
        (name, labels) for name, labels in expected if samples.get((name, tuple(sorted(labels.items())))) != 0
    ]
    assert not_at_zero == []


@all_databases
def test_outside_development_metrics_are_closed_without_a_token(metrics_client: Any) -> None:
    # given a process that is not `make run` (no TICKETING_DEV), with no METRICS_TOKEN set
    with override_settings(DEVELOPMENT=False, METRICS_TOKEN=""):
        # when /metrics is asked
        response = metrics_client.get("/metrics")

    # then it is refused, saying what opens it
    assert response.status_code == 403
    assert "METRICS_TOKEN" in response.json()["detail"]


@all_databases
def test_outside_development_the_token_opens_the_metrics(metrics_client: Any) -> None:
    with override_settings(DEVELOPMENT=False, METRICS_TOKEN="s3cret-token"):
        response = metrics_client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert b"ticketing_sagas_started_total" in response.content


@pytest.mark.parametrize(("header", "status"), [(None, 401), ("Bearer wrong", 401), ("Bearer s3cret-token", 200)])
@all_databases
def test_metrics_want_the_token_when_one_is_set(metrics_client: Any, header: str | None, status: int) -> None:
    # given METRICS_TOKEN is set
    with override_settings(METRICS_TOKEN="s3cret-token"):
        # when /metrics is asked with or without it
        headers = {"HTTP_AUTHORIZATION": header} if header else {}
        response = metrics_client.get("/metrics", **headers)

    # then only the right bearer token gets the metrics
    assert response.status_code == status
    if status == 401:
        assert "METRICS_TOKEN" in response.json()["detail"]
