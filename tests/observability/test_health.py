"""GET /healthz (alive) and GET /readyz (the databases and the broker answer, or 503 naming what does not)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import current_app
from django.db import connections

from tests.conftest import all_databases, saga


def closed_port() -> int:
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def payments_database_down() -> Iterator[None]:
    """The payments alias pointed at a closed port, for this test only (the real server is untouched)."""
    connection = connections["payments"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    yield
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


def test_healthz_says_the_process_is_alive(metrics_client: Any) -> None:
    response = metrics_client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "alive"})


@all_databases
def test_readyz_is_ready_when_databases_and_broker_answer(metrics_client: Any) -> None:
    response = metrics_client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@saga
def test_readyz_names_the_database_that_does_not_answer(metrics_client: Any, payments_database_down: None) -> None:
    # given the payments database does not answer (see the fixture)
    # when readiness is asked
    response = metrics_client.get("/readyz")

    # then it is 503 and names the payments database alone, without the driver's error text
    assert response.status_code == 503
    assert response.json()["down"] == ["database payments"]
    assert "127.0.0.1" not in response.content.decode()


@all_databases
def test_readyz_names_the_broker_when_it_does_not_answer(metrics_client: Any, monkeypatch: Any) -> None:
    # given a broker URL nothing listens on (Celery reads the variable before its own setting)
    nowhere = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    monkeypatch.setenv("CELERY_BROKER_URL", nowhere)
    monkeypatch.setattr(current_app.conf, "broker_url", nowhere)

    # when readiness is asked
    response = metrics_client.get("/readyz")

    # then it is 503 and names the broker, without the connection's error text
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]
    assert "127.0.0.1" not in response.content.decode()
