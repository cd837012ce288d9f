"""Gauges that need a query: computed when ``/metrics`` is scraped, at most every few seconds.

An app registers a function that returns its samples (``register``); the functions run in the
process that serves ``/metrics`` and their answer is kept for ``METRICS_GAUGE_SECONDS``, so a scrape
every second costs a handful of index lookups every few seconds, whatever the traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    name: str
    help: str
    labels: dict[str, str]
    value: float


Source = Callable[[], Iterable[Sample]]
_sources: dict[str, Source] = {}


def register(key: str, source: Source) -> None:
    """Add (or replace) a source of gauge samples; ``key`` names it in logs."""
    _sources[key] = source


class CachedGauges(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = 0.0
        self._samples: list[Sample] = []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._at >= settings.METRICS_GAUGE_SECONDS:
                self._samples = list(read_sources())
                self._at = time.monotonic()
            samples = self._samples
        yield from families(samples)


def read_sources() -> Iterator[Sample]:
    for key, source in list(_sources.items()):
        try:
            yield from list(source())
        except Exception:  # one database down must not take the other gauges (or /metrics) with it
            logger.warning("gauge source %s failed", key, exc_info=True)


def families(samples: list[Sample]) -> Iterator[Metric]:
    by_name: dict[str, GaugeMetricFamily] = {}
    for sample in samples:
        family = by_name.get(sample.name)
        if family is None:
            family = by_name[sample.name] = GaugeMetricFamily(sample.name, sample.help, labels=list(sample.labels))
        family.add_metric(list(sample.labels.values()), sample.value)
    yield from by_name.values()


GAUGES = CachedGauges()


def register_waiting_room(lengths: Callable[[], dict[str, int]]) -> None:
    """For the waiting room: ``lengths()`` returns {performance id: users waiting}, read when scraped."""

    def samples() -> Iterator[Sample]:
        for performance, length in lengths().items():
            yield Sample(
                WAITING_ROOM_LENGTH,
                "Users waiting in a performance's waiting room.",
                {"performance": performance},
                length,
            )

    register("waiting-room", samples)


WAITING_ROOM_LENGTH = "ticketing_waiting_room_length"
