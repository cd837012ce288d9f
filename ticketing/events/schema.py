"""What the catalogue is made of: services, typed payloads, consumers, and what is derived from them.

A payload is a ``msgspec.Struct`` (chosen over dataclasses and pydantic by a micro-benchmark of
validate and encode, see docs/ADDING_AN_EVENT.md). A Struct does not check its fields when it is built,
so ``encode`` (on publish) and ``decode`` (on consume) both validate: a wrong field is named in the error.
Nothing here imports Django, so settings.py can derive its routes from the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgspec


@dataclass(frozen=True)
class Service:
    """A service: its name (also its queue's and its apps's) and the database alias it owns."""

    name: str
    database: str


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """The base of every event's payload. Unknown fields are ignored, so a newer publisher's extra
    field does not break an older consumer; a new field must have a default, so that envelopes
    written before it are still consumed."""

    name: ClassVar[str]
    publisher: ClassVar[Service]
    consumers: ClassVar[tuple[Service, ...]]


P = TypeVar("P", bound=type[Payload])


class InvalidPayload(ValueError):
    """A payload that does not match its event's declaration; the message names the field."""


class UnknownEvent(LookupError):
    pass


@dataclass
class Catalogue:
    services: tuple[Service, ...]
    events: dict[str, type[Payload]] = field(default_factory=dict)

    def event(self, name: str, *, publisher: Service, consumers: Iterable[Service]) -> Callable[[P], P]:
        """Declare the event ``name``: the class decorated is its payload."""

        def declare(payload: P) -> P:
            if name in self.events:
                raise ValueError(f"event {name!r} is declared twice")
            for service in (publisher, *consumers):
                if service not in self.services:
                    raise ValueError(f"event {name!r}: {service.name!r} is not a declared service")
            payload.name, payload.publisher, payload.consumers = name, publisher, tuple(consumers)
            self.events[name] = payload
            return payload

        return declare

    def payload_type(self, name: str) -> type[Payload]:
        try:
            return self.events[name]
        except KeyError:
            raise UnknownEvent(f"event {name!r} is not in the catalogue") from None

    def routes(self) -> dict[str, list[str]]:
        """Each event's consuming queues (one queue per service, named after it)."""
        return {name: [queue_of(s) for s in payload.consumers] for name, payload in self.events.items()}

    def consuming(self) -> tuple[Service, ...]:
        """The services that consume at least one event (each runs a consumer task)."""
        return tuple(s for s in self.services if any(s in p.consumers for p in self.events.values()))


def queue_of(service: Service) -> str:
    return service.name


def task_name(queue: str) -> str:
    """The consumer task on ``queue``: the relay sends every event to it."""
    return f"{queue}.handle_event"


def batch_task_name(queue: str) -> str:
    """The consumer task on ``queue`` that takes a batch of events in one message (the relay's drains)."""
    return f"{queue}.handle_events"


def encode(payload: Payload) -> dict[str, Any]:
    """The payload as JSON-ready builtins, validated against its declaration (publish side)."""
    raw = msgspec.to_builtins(payload)
    validate(type(payload), raw)
    if not isinstance(raw, dict):  # pragma: no cover (a Struct encodes to an object)
        raise InvalidPayload(f"{payload.name}: not an object")
    return raw


def decode(payload_type: type[Payload], raw: Any) -> Payload:
    """The typed payload of ``raw`` (consume side); InvalidPayload names the field that is wrong."""
    return validate(payload_type, raw)


def validate(payload_type: type[Payload], raw: Any) -> Payload:
    try:
        return msgspec.convert(raw, payload_type)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"{payload_type.name}: {exc}") from exc


Handler = Callable[[Any], None]  # (the event's typed payload) -> None
GiveUp = Callable[..., None]  # (the event's typed payload, *, reason) -> None


class Consumer:
    """One service's handlers, one per event it consumes; built in the service's ``handlers`` module.

    ``manage.py check`` compares them with the catalogue (ticketing.outbox.checks).
    """

    registry: ClassVar[dict[str, Consumer]] = {}

    def __init__(self, service: Service) -> None:
        if service.name in self.registry:
            raise ValueError(f"{service.name} has a consumer already")
        self.service = service
        self.handlers: dict[str, Handler] = {}
        self.give_up: dict[str, GiveUp] = {}
        self.registry[service.name] = self

    def handles(self, payload: type[Payload], *, give_up: GiveUp | None = None) -> Callable[[Handler], Handler]:
        """Register the decorated function as this service's handler of ``payload``'s event.

        ``give_up`` (optional) runs instead, exactly once, when the handler kept failing on transient
        errors until the retries ran out: it turns the event into the saga's failure path.
        """

        def register(handler: Handler) -> Handler:
            if payload.name in self.handlers:
                raise ValueError(f"{self.service.name} handles {payload.name} twice")
            self.handlers[payload.name] = handler
            if give_up is not None:
                self.give_up[payload.name] = give_up
            return handler

        return register
