"""Log lines carry the saga's ids (JSON with LOG_FORMAT=json); the periodic safety nets are quiet at INFO."""

from __future__ import annotations

import json
import logging

from ticketing.observability.logging import JsonFormatter, QuietHousekeeping, SagaContextFilter, saga_logging


def record(name: str, message: str, level: int = logging.INFO, **extra: str) -> logging.LogRecord:
    entry = logging.LogRecord(name, level, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_a_line_logged_while_consuming_names_the_saga_and_the_event_in_json() -> None:
    # given a line logged while an event of saga 42 is consumed
    with saga_logging(correlation_id="42", event_id="e-1"):
        line = record("ticketing.events", "payments: consumed concert-reserve")
        SagaContextFilter().filter(line)

    # when it is written as JSON
    written = json.loads(JsonFormatter().format(line))

    # then it is one object with the message and both ids
    assert written["message"] == "payments: consumed concert-reserve"
    assert (written["correlation_id"], written["event_id"], written["level"]) == ("42", "e-1", "INFO")


def test_ids_given_with_extra_win_and_plain_lines_show_them() -> None:
    line = record("ticketing.concerts.services", "reservation 7 booked", correlation_id="7")
    SagaContextFilter().filter(line)
    assert line.saga == " [correlation_id=7]"


def test_a_line_about_no_saga_has_no_ids() -> None:
    line = record("django", "started")
    SagaContextFilter().filter(line)
    assert line.saga == ""
    assert "correlation_id" not in json.loads(JsonFormatter().format(line))


def test_celery_info_lines_about_the_periodic_relay_are_dropped_but_not_warnings_or_other_tasks() -> None:
    quiet = QuietHousekeeping()
    assert not quiet.filter(record("celery.beat", "Scheduler: Sending due task outbox-relay-default (outbox.relay)"))
    assert not quiet.filter(record("celery.app.trace", "Task outbox.relay[1] succeeded in 0.01s: 0"))
    assert quiet.filter(record("celery.app.trace", "Task outbox.relay[1] raised", logging.ERROR))
    assert quiet.filter(record("celery.app.trace", "Task payments.handle_event[1] retry: Retry in 1s"))
    assert quiet.filter(record("celery.apps.worker", "payments@host ready."))


def test_celerys_per_task_received_and_succeeded_lines_are_dropped() -> None:
    # the consumer's own line ("payments: consumed concert-reserve") says it, with the saga's ids
    quiet = QuietHousekeeping()
    assert not quiet.filter(record("celery.worker.strategy", "Task payments.handle_event[1] received"))
    assert not quiet.filter(record("celery.app.trace", "Task payments.handle_event[1] succeeded in 0.01s: None"))
    assert quiet.filter(record("ticketing.outbox.relay", "outbox.relay is a word here"))
