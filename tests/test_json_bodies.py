"""A JSON body nested too deeply is a 400 naming the problem, on every operation that takes a body."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from rest_framework.exceptions import ParseError

from tests.conftest import all_databases, new_client
from ticketing.parsers import MAX_JSON_DEPTH, JSONParser

pytestmark = [all_databases]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def body_operations(client: Any) -> list[tuple[str, str]]:
    """Every (method, path) of the schema that takes a JSON body, its path ids filled with 1."""
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)
    return [
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]


def test_a_deeply_nested_body_is_a_400_on_every_operation_that_takes_one(make_user: Any) -> None:
    # given a signed-in superuser (the door's check-in needs its permission) and every operation with a body
    user = make_user()
    user.is_staff = user.is_superuser = True
    user.save(using="default")
    client = new_client()
    client.force_authenticate(user)
    operations = body_operations(client)
    assert len(operations) >= 5

    # when each gets a body of 5,000 nested arrays (past Python's recursion limit)
    answers = {
        (method, path): getattr(client, method)(path, nested(5_000), content_type="application/json")
        for method, path in operations
    }

    # then each is a 400 that says the body is nested too deeply
    assert {key: a.status_code for key, a in answers.items()} == dict.fromkeys(answers, 400)
    assert all("nested deeper than" in a.json()["detail"] for a in answers.values())


@pytest.mark.parametrize(("depth", "accepted"), [(MAX_JSON_DEPTH, True), (MAX_JSON_DEPTH + 1, False)])
def test_the_parser_accepts_bodies_up_to_the_depth_limit(depth: int, accepted: bool) -> None:
    # given a body of objects nested ``depth`` deep
    body = '{"a": ' * depth + "1" + "}" * depth
    # when it is parsed, then it is refused only past the limit
    if accepted:
        assert JSONParser().parse(io.BytesIO(body.encode())) is not None
    else:
        with pytest.raises(ParseError, match="nested deeper than"):
            JSONParser().parse(io.BytesIO(body.encode()))
