"""The Grafana dashboard and the alert rules ask only for metrics the system exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from tests.conftest import all_databases
from ticketing.observability import gauges, metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIXES = re.compile(r"_(bucket|sum|count|total)$")


def used_in(text: str) -> set[str]:
    return {SUFFIXES.sub("", name) for name in re.findall(r"\bticketing_[a-z_]+", text)}


def exported(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    recorded = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    monkeypatch.setattr(gauges, "_sources", dict(gauges._sources))  # the waiting room's, for this test only
    gauges.register_waiting_room(lambda: {"1": 3})
    read = {sample.name for sample in gauges.read_sources()}
    return recorded | read


@all_databases
def test_every_metric_of_the_dashboard_and_the_alerts_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    # given the dashboard's queries and the alert rules
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    rules = (DOCS / "prometheus" / "alerts.yml").read_text()

    # when their metric names are compared with what the processes record and /metrics reads
    missing = (used_in(queries) | used_in(rules)) - exported(monkeypatch)

    # then none is missing
    assert not missing
    assert len(used_in(queries)) >= 15
