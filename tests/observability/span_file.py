"""Test only: a span exporter that appends each finished span as a JSON line to the file named by SPAN_FILE.

Worker processes of a test load it through ``OTEL_TRACES_EXPORTER=tests.observability.span_file.JsonLinesSpanExporter``;
the test reads the file back to see the spans of every process in one place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": dict(span.attributes or {}),
        "pid": os.getpid(),
    }


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self) -> None:
        self.path = Path(os.environ["SPAN_FILE"])

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span), default=str) + "\n" for span in spans)
        with self.path.open("a") as file:  # one append per batch: lines of several processes never mix
            file.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
