"""The catalogue of events: routes, queues and consumer tasks come from it, and `manage.py check` holds
the services' handlers to it."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings
from django.core.checks import Error
from django.core.management import call_command

from bench.saga import QUEUE_CONCURRENCY
from ticketing.events.catalogue import CATALOGUE, CONCERTS, PAYMENTS
from ticketing.events.schema import Catalogue, Consumer, Payload, Service
from ticketing.outbox.checks import catalogue_problems
from ticketing.outbox.tasks import CONSUMER_TASKS


def test_routes_queues_and_consumer_tasks_are_derived_from_the_catalogue() -> None:
    # given the catalogue's services and events

    # then the relay's routes are its events' consumers, every service has a queue, and every
    # consuming service a consumer task of the derived name
    assert CATALOGUE.routes() == settings.OUTBOX_EVENT_ROUTES
    assert {queue.name for queue in current_app.conf.task_queues} == {s.name for s in CATALOGUE.services}
    assert {s.name: s.database for s in CATALOGUE.services} == settings.SERVICE_DATABASES
    assert {name: task.name for name, task in CONSUMER_TASKS.items()} == {
        "concerts": "concerts.handle_event",
        "payments": "payments.handle_event",
    }


def test_manage_py_check_passes_on_the_catalogue_as_it_is() -> None:
    # when the checks run
    out = StringIO()
    call_command("check", stdout=out)

    # then they find nothing
    assert "no issues" in out.getvalue()


def test_every_service_handles_exactly_the_events_declared_for_it() -> None:
    # given the consumers the services registered
    consumers = Consumer.registry

    # then each consuming service handles what the catalogue says it consumes, and nothing else
    for service in CATALOGUE.consuming():
        declared = {name for name, payload in CATALOGUE.events.items() if service in payload.consumers}
        assert set(consumers[service.name].handlers) == declared


# --- The checks on a catalogue with a mistake in it ------------------------------------------------------


def small_catalogue() -> tuple[Catalogue, type[Payload]]:
    catalogue = Catalogue(services=(CONCERTS, PAYMENTS))

    @catalogue.event("seat-probe", publisher=CONCERTS, consumers=[PAYMENTS])
    class SeatProbe(Payload, frozen=True, kw_only=True):
        seat_id: int

    return catalogue, SeatProbe


def consumer_of(service: Service, *payloads: type[Payload]) -> Consumer:
    consumer = Consumer.__new__(Consumer)  # outside the registry: these consumers exist for one check only
    consumer.service, consumer.handlers, consumer.give_up = service, {}, {}
    for payload in payloads:
        consumer.handlers[payload.name] = lambda event: None
    return consumer


def ids(problems: list[Error]) -> list[str]:
    return sorted(str(problem.id) for problem in problems)


def test_an_event_without_a_route_fails_the_check() -> None:
    # given an event declared for payments, and routes that miss it
    catalogue, probe = small_catalogue()

    # when the checks run
    problems = catalogue_problems(catalogue, routes={}, consumers={"payments": consumer_of(PAYMENTS, probe)})

    # then the missing route is reported
    assert ids(problems) == ["events.E001"]
    assert "'seat-probe' has no route" in problems[0].msg


def test_a_route_to_the_wrong_queue_or_of_an_undeclared_event_fails_the_check() -> None:
    catalogue, probe = small_catalogue()
    routes = {"seat-probe": ["concerts"], "ghost": ["payments"]}

    problems = catalogue_problems(catalogue, routes=routes, consumers={"payments": consumer_of(PAYMENTS, probe)})

    assert ids(problems) == ["events.E002", "events.E003"]


def test_a_consumer_without_a_handler_for_its_event_fails_the_check() -> None:
    # given payments declared as the consumer of an event it has no handler for
    catalogue, _ = small_catalogue()

    # when the checks run
    problems = catalogue_problems(catalogue, routes=catalogue.routes(), consumers={"payments": consumer_of(PAYMENTS)})

    # then the missing handler is reported, by service and event
    assert ids(problems) == ["events.E004"]
    assert problems[0].msg == "payments consumes 'seat-probe' but has no handler for it"


def test_a_handler_of_an_event_not_declared_for_its_service_fails_the_check() -> None:
    # given concerts handling an event declared for payments only, and payments handling an undeclared one
    catalogue, probe = small_catalogue()
    stray = consumer_of(CONCERTS, probe)
    ghost = consumer_of(PAYMENTS, probe)
    ghost.handlers["ghost"] = lambda event: None

    # when the checks run
    problems = catalogue_problems(
        catalogue, routes=catalogue.routes(), consumers={"concerts": stray, "payments": ghost}
    )

    # then both are reported
    assert ids(problems) == ["events.E005", "events.E006"]


def test_an_event_declared_twice_or_with_an_unknown_service_is_refused_at_import() -> None:
    catalogue, _ = small_catalogue()

    with pytest.raises(ValueError, match="declared twice"):
        catalogue.event("seat-probe", publisher=CONCERTS, consumers=[PAYMENTS])(type("Again", (Payload,), {}))
    with pytest.raises(ValueError, match="'tickets' is not a declared service"):
        catalogue.event("other", publisher=Service("tickets", "tickets"), consumers=[PAYMENTS])(
            type("Other", (Payload,), {})
        )


def test_the_makefile_and_the_procfile_name_every_service_of_the_catalogue() -> None:
    # given the files that cannot import the catalogue (make and honcho read them)
    root = Path(__file__).resolve().parents[2]
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    procfile = (root / "Procfile").read_text(encoding="utf-8")

    # then they list the same services: a database to migrate, a test database URL and a worker each
    (databases,) = re.findall(r"^DATABASES := (.*)$", makefile, re.M)
    assert databases.split() == [service.database for service in CATALOGUE.services]
    for service in CATALOGUE.services:
        assert f"{service.name.upper()}_DATABASE_URL=" in makefile
        assert re.search(rf"^{service.name}: .*celery -A celery_app worker -Q {service.name} ", procfile, re.M)


def test_the_compose_file_runs_every_service_of_the_catalogue() -> None:
    # given the compose file (docker reads it, so it cannot import the catalogue)
    compose = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text(encoding="utf-8")

    # then each service has its database URL, its migration and a worker on its queue
    for service in CATALOGUE.services:
        assert f"{service.name.upper()}_DATABASE_URL:" in compose
        assert f"migrate --database {service.database} " in compose
        assert re.search(rf'^  worker-{service.name}:\n(?:.*\n){{0,2}}.*"-Q", "{service.name}"', compose, re.M)


def test_the_benchmarks_start_a_worker_for_every_service_as_the_procfile_does() -> None:
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text(encoding="utf-8")

    for service in CATALOGUE.services:
        (line,) = re.findall(rf"^{service.name}: .*$", procfile, re.M)
        (concurrency,) = re.findall(r"--concurrency (?:\$\{\w+:-)?(\d+)", line)
        assert QUEUE_CONCURRENCY[service.name] == int(concurrency)
    assert set(QUEUE_CONCURRENCY) == {service.name for service in CATALOGUE.services}
