"""`manage.py check` (and every command that runs the checks): the catalogue, the routes and the
consumers' handlers agree, so that a missing route or handler fails at start-up, not in a saga."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from ticketing.events.catalogue import CATALOGUE
from ticketing.events.schema import Catalogue, Consumer

HINT = "Declare the event in ticketing/events/catalogue.py and handle it in each consumer's handlers.py."


@register("events")
def catalogue_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return catalogue_problems(CATALOGUE, routes=settings.OUTBOX_EVENT_ROUTES, consumers=Consumer.registry)


def catalogue_problems(
    catalogue: Catalogue, *, routes: dict[str, list[str]], consumers: dict[str, Consumer]
) -> list[Error]:
    return [
        *route_problems(catalogue, routes),
        *missing_handlers(catalogue, consumers),
        *stray_handlers(catalogue, consumers),
    ]


def route_problems(catalogue: Catalogue, routes: dict[str, list[str]]) -> list[Error]:
    wanted = catalogue.routes()
    problems = [
        Error(
            f"event {name!r} has no route",
            hint="OUTBOX_EVENT_ROUTES must be derived from the catalogue.",
            id="events.E001",
        )
        for name in wanted
        if not routes.get(name)
    ]
    problems += [
        Error(f"event {name!r} is routed to {routes[name]}, but declared for {queues}", id="events.E002")
        for name, queues in wanted.items()
        if routes.get(name) and sorted(routes[name]) != sorted(queues)
    ]
    problems += [
        Error(f"route for {name!r}, an event the catalogue does not declare", hint=HINT, id="events.E003")
        for name in routes
        if name not in wanted
    ]
    return problems


def missing_handlers(catalogue: Catalogue, consumers: dict[str, Consumer]) -> list[Error]:
    return [
        Error(f"{service.name} consumes {name!r} but has no handler for it", hint=HINT, id="events.E004")
        for name, payload in catalogue.events.items()
        for service in payload.consumers
        if name not in getattr(consumers.get(service.name), "handlers", {})
    ]


def stray_handlers(catalogue: Catalogue, consumers: dict[str, Consumer]) -> list[Error]:
    problems = []
    for service, consumer in consumers.items():
        for name in consumer.handlers:
            payload = catalogue.events.get(name)
            if payload is None:
                problems.append(
                    Error(f"{service} handles {name!r}, which is not declared", hint=HINT, id="events.E005")
                )
            elif service not in {s.name for s in payload.consumers}:
                problems.append(
                    Error(
                        f"{service} handles {name!r}, which is not declared as consumed by it",
                        hint=HINT,
                        id="events.E006",
                    )
                )
    return problems
