from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import Workers

PROCESSES = ("accounts", "concerts", "payments", "relay", "beat")
_memory = InMemorySpanExporter()


@pytest.fixture
def test_process_spans() -> Iterator[InMemorySpanExporter]:
    """Spans of this (the test's) process, in memory; the booking request is served here."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_memory))
        trace.set_tracer_provider(provider)
    _memory.clear()
    DjangoInstrumentor().instrument()
    yield _memory
    DjangoInstrumentor().uninstrument()
    _memory.clear()


@pytest.fixture(scope="module")
def traced_workers(workers: Workers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The workers, relay and beat restarted with tracing on, each writing its spans to one file."""
    span_file = tmp_path_factory.mktemp("spans") / "spans.jsonl"
    tracing_env = {
        "OTEL_TRACES_EXPORTER": "tests.observability.span_file.JsonLinesSpanExporter",
        "SPAN_FILE": str(span_file),
    }
    restart(workers, tracing_env)
    yield span_file
    restart(workers, dict.fromkeys(tracing_env))


def restart(workers: Workers, env: dict[str, Any]) -> None:
    for name in PROCESSES:
        if name in workers.processes:
            workers.stop(name)
    for key, value in env.items():
        if value is None:
            workers.env.pop(key, None)
        else:
            workers.env[key] = value
    for name in PROCESSES:
        workers.start(name)


def scrape(client: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics, parsed: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.fixture
def metrics_client() -> Any:
    from django.test import Client

    return Client()
