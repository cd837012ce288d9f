"""POST /api/auth/signup/: creating an account, and refusing bad input with a 400 that names the field."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import PASSWORD, all_databases, new_client, unique
from ticketing.accounts.models import User
from ticketing.outbox.models import OutboxMessage

pytestmark = [all_databases]

URL = "/api/auth/signup/"


def signup(client: APIClient, username: Any, password: Any = PASSWORD) -> Any:
    return client.post(URL, {"username": username, "password": password}, format="json")


def users_named(username: str) -> int:
    return User.objects.using("default").filter(username__iexact=username).count()


def test_signup_creates_the_user_and_answers_201_with_id_and_username(api: APIClient) -> None:
    # given a new username
    username = unique("Kim")

    # when someone signs up with it
    response = signup(api, username)

    # then the account exists and the answer is its id and username
    assert response.status_code == 201, response.content
    user = User.objects.using("default").get(username=username)
    assert response.json() == {"id": user.id, "username": username}
    assert user.check_password(PASSWORD)


def test_a_signed_up_password_is_stored_as_an_argon2id_hash(api: APIClient) -> None:
    # when someone signs up
    username = unique("user")
    assert signup(api, username).status_code == 201

    # then the password is kept as an Argon2id hash, never in clear
    stored = User.objects.using("default").get(username=username).password
    assert stored.startswith("argon2$argon2id$")
    assert PASSWORD not in stored


def test_a_created_user_password_is_hashed_with_argon2id(make_user: Any) -> None:
    # when a user is created through the model
    user = make_user()

    # then Argon2id is the hasher
    assert User.objects.using("default").get(pk=user.pk).password.startswith("argon2$argon2id$")


def test_signup_refuses_a_username_taken_in_another_case(api: APIClient) -> None:
    # given an account "Kim..."
    username = unique("Kim")
    assert signup(api, username).status_code == 201

    # when someone signs up as "kim..."
    response = signup(api, username.lower())

    # then it is refused, naming the username, and there is still one account
    assert response.status_code == 400
    assert "username" in response.json()
    assert users_named(username) == 1


def test_a_refused_signup_announces_nothing(api: APIClient) -> None:
    # given an existing account
    username = unique("Kim")
    assert signup(api, username).status_code == 201
    before = OutboxMessage.objects.using("default").filter(event="user-registered").count()

    # when a second signup with the same name is refused
    assert signup(api, username.upper()).status_code == 400

    # then no second user-registered event was written
    assert OutboxMessage.objects.using("default").filter(event="user-registered").count() == before


@pytest.mark.parametrize(
    "password",
    ["Ab1!xyz", "password", "12345678901234", "   "],
    ids=["too-short", "too-common", "all-digits", "blank"],
)
def test_signup_refuses_a_weak_password_naming_the_password(api: APIClient, password: str) -> None:
    # when someone signs up with a weak password
    username = unique("user")
    response = signup(api, username, password)

    # then it is refused, naming the password, and no account exists
    assert response.status_code == 400
    assert "password" in response.json()
    assert users_named(username) == 0


def test_signup_refuses_a_password_like_the_username(api: APIClient) -> None:
    # when someone signs up with their username as password
    username = unique("melodious")
    response = signup(api, username, username)

    # then it is refused, naming the password
    assert response.status_code == 400
    assert "password" in response.json()
    assert users_named(username) == 0


@pytest.mark.parametrize(
    ("body", "missing"),
    [({}, {"username", "password"}), ({"username": "x"}, {"password"}), ({"password": PASSWORD}, {"username"})],
    ids=["nothing", "no-password", "no-username"],
)
def test_signup_without_a_field_is_a_400_naming_it(api: APIClient, body: dict[str, str], missing: set[str]) -> None:
    # when a signup lacks fields
    response = api.post(URL, body, format="json")

    # then it is a 400 naming exactly the missing ones
    assert response.status_code == 400
    assert set(response.json()) == missing


@pytest.mark.parametrize(
    "username",
    [12345, ["kim"], {"name": "kim"}, True, None, "", "kim lee", "kim/../admin", "a" * 151, "kim\x00"],
    ids=["number", "list", "object", "boolean", "null", "empty", "space", "slash", "too-long", "nul-char"],
)
def test_signup_with_a_malformed_username_is_a_400_naming_it(api: APIClient, username: Any) -> None:
    # when the username is not a plain string of allowed characters
    response = signup(api, username)

    # then it is a 400 naming the username, never a 500
    assert response.status_code == 400, response.content
    assert "username" in response.json()


@pytest.mark.parametrize(
    "password", [["x"], {"x": 1}, True, None, "correct\x00horse-9"], ids=["list", "object", "boolean", "null", "nul"]
)
def test_signup_with_a_malformed_password_is_a_400_naming_it(api: APIClient, password: Any) -> None:
    # when the password is not a plain string
    response = signup(api, unique("user"), password)

    # then it is a 400 naming the password
    assert response.status_code == 400, response.content
    assert "password" in response.json()


@pytest.mark.parametrize(
    "body", [b"{bad", b"", b"[1, 2]", b'"kim"', b"null"], ids=["broken", "empty", "list", "string", "null"]
)
def test_signup_with_a_body_that_is_not_a_json_object_is_a_400(api: APIClient, body: bytes) -> None:
    # when the body is not a JSON object
    response = api.post(URL, body, content_type="application/json")

    # then it is a 400, never a 500
    assert response.status_code == 400, response.content


def test_signup_writes_a_user_registered_event_in_the_accounts_database(api: APIClient) -> None:
    # when someone signs up
    response = signup(api, unique("user"))
    user_id = response.json()["id"]

    # then a user-registered event for the new user waits in the accounts outbox, and only there
    message = OutboxMessage.objects.using("default").get(event="user-registered", aggregate_id=str(user_id))
    assert message.payload == {"user_id": user_id}
    assert message.state == "PENDING"
    for alias in ("concerts", "payments"):
        assert not OutboxMessage.objects.using(alias).filter(event="user-registered").exists()


def test_signups_past_the_rate_of_an_address_are_a_429_with_retry_after(api: APIClient, settings: Any) -> None:
    # given an address that signed up as often as its rate allows
    settings.SIGNUP_RATE_PER_ADDRESS = "2/min"
    for _ in range(2):
        assert signup(api, unique("kim")).status_code == 201

    # when it signs up once more
    username = unique("kim")
    response = signup(api, username)

    # then it is a 429 saying when to try again, and no account was made
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert users_named(username) == 0


def test_the_signup_rate_counts_each_address_on_its_own(settings: Any) -> None:
    # given an address past its signup rate
    settings.SIGNUP_RATE_PER_ADDRESS = "1/min"
    busy = new_client()
    signup(busy, unique("kim"))
    assert signup(busy, unique("kim")).status_code == 429

    # when someone else signs up from another address
    response = signup(new_client(), unique("lee"))

    # then it works
    assert response.status_code == 201


def test_a_forwarded_for_header_does_not_escape_the_signup_rate(api: APIClient, settings: Any) -> None:
    # given an address past its signup rate (and no trusted proxy)
    settings.SIGNUP_RATE_PER_ADDRESS = "1/min"
    signup(api, unique("kim"))

    # when it claims another address in X-Forwarded-For
    response = api.post(
        URL, {"username": unique("kim"), "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="10.3.3.3"
    )

    # then it is still throttled
    assert response.status_code == 429
