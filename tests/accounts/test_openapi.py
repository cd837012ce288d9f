"""The OpenAPI schema at /api/schema/ describes the whole HTTP API of docs/CONTRACT.md §3, and the docs page serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.conftest import all_databases

pytestmark = [all_databases]

CONTRACT = {
    "/api/auth/signup/": "post",
    "/api/auth/login/": "post",
    "/api/auth/refresh/": "post",
    "/api/auth/me/": "get",
    "/api/concerts/": "get",
    "/api/concerts/{concert_id}/": "get",
    "/api/performances/{performance_id}/seats/": "get",
    "/api/reservations/": "post",
    "/api/reservations/{reservation_id}/": "get",
    "/api/wallet/": "get",
    "/api/wallet/charge/": "post",
    "/api/payments/": "get",
}


def test_the_schema_is_served_and_mentions_reservations(api: APIClient) -> None:
    # when anyone fetches the schema
    response = api.get("/api/schema/")

    # then it is there and describes the reservations endpoint
    assert response.status_code == 200
    assert b"/api/reservations/" in response.content


def test_the_schema_describes_every_endpoint_of_the_contract(api: APIClient) -> None:
    # when the schema is fetched as JSON
    response = api.get("/api/schema/", {"format": "json"})
    paths: dict[str, Any] = json.loads(response.content)["paths"]

    # then every endpoint of docs/CONTRACT.md §3 is in it with its method
    missing = {path: method for path, method in CONTRACT.items() if method not in paths.get(path, {})}
    assert missing == {}


def test_the_schema_generates_without_warnings_and_validates(tmp_path: Path) -> None:
    # when the schema is generated strictly and validated against the OpenAPI specification
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))

    # then it is written without a warning or error
    assert "/api/reservations/" in target.read_text()


@pytest.mark.parametrize("url", ["/api/docs/"])
def test_the_docs_page_is_served(api: APIClient, url: str) -> None:
    # when anyone opens the API docs
    response = api.get(url)

    # then the page is there
    assert response.status_code == 200
