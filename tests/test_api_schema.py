"""The OpenAPI schema says what the API's validation accepts and which errors each operation answers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from tests.conftest import all_databases

pytestmark = [all_databases]


@pytest.fixture
def schema(api: APIClient) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(api.get("/api/schema/", {"format": "json"}).content)
    return document


def request_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    ref = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    component: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return component


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]


def test_the_signup_schema_states_the_password_validators_minimum_and_the_username_rules(
    schema: dict[str, Any],
) -> None:
    # when the signup body is read from the schema
    fields = request_schema(schema, "/api/auth/signup/")["properties"]

    # then the password's minimum length is the one the validators enforce
    minimum = fields["password"]["minLength"]
    with pytest.raises(ValidationError):
        validate_password("x" * (minimum - 1) if minimum > 1 else "")
    validate_password("horse-staple-" + "z" * max(0, minimum - 13))
    assert re.fullmatch(fields["password"]["pattern"], "a" * (minimum - 1)) is None
    # and the username is what Django's username validator accepts, at most 150 characters
    assert fields["username"]["maxLength"] == 150
    assert re.fullmatch(fields["username"]["pattern"], "jane.doe+1@x") is not None
    assert re.fullmatch(fields["username"]["pattern"], "jane doe") is None


def test_strings_without_a_pattern_of_their_own_refuse_nul_and_blank(schema: dict[str, Any]) -> None:
    # when the login body is read from the schema
    username = request_schema(schema, "/api/auth/login/")["properties"]["username"]

    # then its pattern refuses what DRF refuses: a NUL character, only spaces
    assert re.fullmatch(username["pattern"], "jane") is not None
    assert re.fullmatch(username["pattern"], "ja\x00ne") is None
    assert re.fullmatch(username["pattern"], "   ") is None


def test_the_bodies_state_their_ranges(schema: dict[str, Any]) -> None:
    # then a seat id is a positive integer, a charge 1 to 100,000,000 won
    seat_id = request_schema(schema, "/api/reservations/")["properties"]["seat_id"]
    assert (seat_id["type"], seat_id["minimum"]) == ("integer", 1)
    amount = request_schema(schema, "/api/wallet/charge/")["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (1, 100_000_000)
    # and a cancellation takes no body
    assert "requestBody" not in schema["paths"]["/api/reservations/{reservation_id}/cancel/"]["post"]


def test_the_idempotency_key_is_1_to_255_characters(schema: dict[str, Any]) -> None:
    # given every operation that takes an Idempotency-Key
    keyed = [
        (path, p["schema"])
        for path, _, op in operations(schema)
        for p in op.get("parameters", [])
        if p["name"] == "Idempotency-Key"
    ]
    # then each says how long a key may be, and that a key is not only spaces
    assert len(keyed) == 4  # booking, cancelling, charging, accepting a waiting-list offer
    for path, key in keyed:
        assert (key["minLength"], key["maxLength"], key["pattern"]) == (1, 255, r"\S"), path


def test_every_operation_documents_the_errors_it_can_answer(schema: dict[str, Any]) -> None:
    # given every operation of the API
    missing = []
    for path, method, op in operations(schema):
        authenticated = {} not in op.get("security", [{}]) and op.get("security") != []
        expected = {
            "400": "requestBody" in op or any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])),
            "401": authenticated,
            "404": "{" in path,
            "422": any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])),
        }
        # then each lists the errors that follow from what it takes
        missing += [
            f"{method.upper()} {path}: {code}" for code, due in expected.items() if due and code not in op["responses"]
        ]
    assert missing == []


def test_conflicts_and_wrong_credentials_are_documented(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    assert {"401", "429"} <= set(paths["/api/auth/login/"]["post"]["responses"])
    assert "401" in paths["/api/auth/refresh/"]["post"]["responses"]
    assert {"404", "409"} <= set(paths["/api/reservations/"]["post"]["responses"])
    assert "409" in paths["/api/reservations/{reservation_id}/cancel/"]["post"]["responses"]


def test_an_unknown_api_path_is_a_json_404(api: APIClient) -> None:
    # when a path under /api/ that no view serves is asked for
    response = api.get("/api/concerts/%C2%84/")

    # then the answer is the API's JSON 404, not Django's HTML page
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_path_without_its_slash_is_redirected_or_told_where(api: APIClient) -> None:
    # when a known path is asked for without its trailing slash
    get = api.get("/api/concerts")
    post = api.post("/api/reservations", {"seat_id": 1}, format="json")

    # then a GET is redirected to it, and a POST (whose body a redirect would lose) told where it is
    assert (get.status_code, get["Location"]) == (301, "/api/concerts/")
    assert post.status_code == 404
    assert post.json() == {"detail": "Not found. Did you mean /api/reservations/?"}
