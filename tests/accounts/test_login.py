"""POST /api/auth/login/: tokens for the right password, 401 for a wrong one, 429 once throttled."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.conftest import PASSWORD, all_databases, new_client, unique
from ticketing.accounts.selectors import login_wait_seconds
from ticketing.accounts.services import login_failure_record

pytestmark = [all_databases]

URL = "/api/auth/login/"


@pytest.fixture(autouse=True)
def long_first_wait(settings: Any) -> None:
    """A first wait far longer than a test's steps, so that "throttled now" never races the clock."""
    settings.LOGIN_DELAY_BASE_SECONDS = 30
    settings.LOGIN_DELAY_CAP_SECONDS = 60


def login(client: APIClient, username: Any, password: Any = PASSWORD) -> Any:
    return client.post(URL, {"username": username, "password": password}, format="json")


def fail_login(client: APIClient, username: str) -> None:
    response = login(client, username, "not-the-password-1")
    assert response.status_code not in (200, 429), response.content


@pytest.mark.parametrize("spelling", [str, str.lower, str.upper, str.swapcase], ids=["as-is", "lower", "upper", "swap"])
def test_login_answers_200_with_tokens_for_the_username_in_any_case(
    api: APIClient, make_user: Any, spelling: Callable[[str], str]
) -> None:
    # given a user "Kim..."
    user = make_user(unique("Kim"))

    # when they log in with the username spelled in some case
    response = login(api, spelling(user.username))

    # then they get an access and a refresh token, both for their id
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "refresh"}
    assert AccessToken(body["access"])["user_id"] == str(user.id)
    assert RefreshToken(body["refresh"])["user_id"] == str(user.id)


def test_login_with_a_wrong_password_is_a_401(api: APIClient, make_user: Any) -> None:
    # given a user
    user = make_user()

    # when someone logs in with the wrong password
    response = login(api, user.username, "not-the-password-1")

    # then it is a 401 and no token is handed out
    assert response.status_code == 401, response.content
    assert "access" not in response.json()


def test_login_as_an_unknown_user_is_a_401(api: APIClient) -> None:
    # when someone logs in as nobody
    response = login(api, unique("nobody"))

    # then it is a 401, like a wrong password (no user enumeration)
    assert response.status_code == 401, response.content


def test_login_of_a_deactivated_user_is_refused(api: APIClient, make_user: Any) -> None:
    # given a deactivated user
    user = make_user()
    user.is_active = False
    user.save(using="default")

    # when they log in with the right password
    response = login(api, user.username)

    # then no token is handed out
    assert response.status_code != 200
    assert "access" not in response.json()


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "kim"}, {"password": PASSWORD}, {"username": ["kim"], "password": PASSWORD}],
    ids=["nothing", "no-password", "no-username", "username-list"],
)
def test_login_with_missing_or_malformed_fields_is_a_400(api: APIClient, body: dict[str, Any]) -> None:
    # when a login lacks a field or sends the wrong type
    response = api.post(URL, body, format="json")

    # then it is a 400 naming the field
    assert response.status_code == 400
    assert set(response.json()) <= {"username", "password"}
    assert response.json()


def test_login_with_a_malformed_json_body_is_a_400(api: APIClient) -> None:
    # when the body is not JSON
    response = api.post(URL, b"{bad", content_type="application/json")

    # then it is a 400, never a 500
    assert response.status_code == 400


def test_an_account_is_not_locked_before_its_failure_limit(make_user: Any) -> None:
    # given one failure fewer than the per-account limit, each from a different address
    user = make_user()
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT - 1):
        fail_login(new_client(), user.username)

    # when the user logs in with the right password
    response = login(new_client(), user.username)

    # then it works
    assert response.status_code == 200, response.content


def test_an_account_that_failed_too_often_is_throttled_even_with_the_right_password(make_user: Any) -> None:
    # given as many failures as the per-account limit, each from a different address
    user = make_user()
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        fail_login(new_client(), user.username)

    # when the user then logs in with the right password, in another case, from yet another address
    response = login(new_client(), user.username.upper())

    # then it is a 429
    assert response.status_code == 429, response.content


def test_throttling_one_account_leaves_other_accounts_alone(make_user: Any) -> None:
    # given an account that failed too often from one address
    victim, other = make_user(), make_user()
    client = new_client()
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        fail_login(new_client(), victim.username)

    # when another user logs in from a fresh address
    response = login(client, other.username)

    # then it works
    assert response.status_code == 200, response.content


def test_an_address_that_failed_too_often_across_usernames_is_throttled(make_user: Any, settings: Any) -> None:
    # given an address that failed the per-address limit, each time with a different username
    settings.LOGIN_FAILURES_PER_IP = 3
    client = new_client()
    for _ in range(3):
        fail_login(client, unique("guess"))
    user = make_user()

    # when a real user logs in with the right password from that address
    response = login(client, user.username)

    # then it is a 429, while the same login from another address works
    assert response.status_code == 429, response.content
    assert login(new_client(), user.username).status_code == 200


def test_a_throttled_login_says_when_to_try_again(make_user: Any) -> None:
    # given an account that used up its free failures
    user = make_user()
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        fail_login(new_client(), user.username)

    # when the user logs in at once
    response = login(new_client(), user.username)

    # then it is a 429 whose Retry-After is the first wait
    assert response.status_code == 429
    assert 29 <= int(response["Retry-After"]) <= 30


def test_each_failure_past_the_free_ones_doubles_the_wait_up_to_the_cap(make_user: Any, settings: Any) -> None:
    # given an account with a 10 s first wait and a 60 s cap
    settings.LOGIN_DELAY_BASE_SECONDS, settings.LOGIN_DELAY_CAP_SECONDS = 10, 60
    username, free = unique("kim"), settings.LOGIN_FAILURES_PER_ACCOUNT
    for _ in range(free - 1):
        login_failure_record(username=username, ip="10.9.9.9")

    # when it fails again, and again
    waits = []
    for _ in range(5):
        login_failure_record(username=username, ip=f"10.8.{len(waits)}.1")
        waits.append(login_wait_seconds(username=username, ip="10.7.7.7"))

    # then the wait doubles each time, and stops at the cap
    assert waits == [10, 20, 40, 60, 60]


def test_no_number_of_failures_locks_an_account_for_good(make_user: Any, settings: Any) -> None:
    # given an account someone failed to log into a hundred times (with a 1 s cap on the wait)
    settings.LOGIN_DELAY_BASE_SECONDS, settings.LOGIN_DELAY_CAP_SECONDS = 1, 1
    user = make_user()
    for n in range(100):
        login_failure_record(username=user.username, ip=f"10.6.{n}.1")

    # when the owner logs in with the right password once the short wait is over
    time.sleep(1.2)
    response = login(new_client(), user.username)

    # then it works
    assert response.status_code == 200, response.content


def test_a_successful_login_forgets_the_accounts_failures(make_user: Any) -> None:
    # given an account that failed one fewer than its free failures, then logged in
    user = make_user()
    free = settings.LOGIN_FAILURES_PER_ACCOUNT
    for _ in range(free - 1):
        fail_login(new_client(), user.username)
    assert login(new_client(), user.username).status_code == 200

    # when it fails as often again
    for _ in range(free - 1):
        fail_login(new_client(), user.username)

    # then the right password still works
    assert login(new_client(), user.username).status_code == 200


def test_a_forwarded_for_header_is_ignored_without_trusted_proxies(make_user: Any, settings: Any) -> None:
    # given an address that failed its limit, claiming another address in X-Forwarded-For each time
    settings.LOGIN_FAILURES_PER_IP = 3
    client = new_client()
    for n in range(3):
        response = client.post(
            URL, {"username": unique("guess"), "password": "x"}, format="json", HTTP_X_FORWARDED_FOR=f"10.5.{n}.1"
        )
        assert response.status_code == 401
    user = make_user()

    # when it logs in claiming yet another address
    response = client.post(
        URL, {"username": user.username, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="10.5.99.1"
    )

    # then the connection's address is the one counted: 429
    assert response.status_code == 429


def test_behind_a_trusted_proxy_each_client_address_counts_on_its_own(make_user: Any, settings: Any) -> None:
    # given one trusted proxy, and a client behind it that failed its address's limit
    settings.TRUSTED_PROXY_COUNT, settings.LOGIN_FAILURES_PER_IP = 1, 3
    proxy = new_client()
    for _ in range(3):
        response = proxy.post(
            URL, {"username": unique("guess"), "password": "x"}, format="json", HTTP_X_FORWARDED_FOR="10.4.0.1"
        )
        assert response.status_code == 401
    user = make_user()

    # when another client logs in through the same proxy (a spoofed first entry changes nothing)
    other = proxy.post(
        URL, {"username": user.username, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="1.2.3.4, 10.4.0.2"
    )
    again = proxy.post(
        URL, {"username": unique("x"), "password": "x"}, format="json", HTTP_X_FORWARDED_FOR="10.4.0.2, 10.4.0.1"
    )

    # then the other client gets in, and the throttled one is still throttled whatever it prepends
    assert other.status_code == 200, other.content
    assert again.status_code == 429


def test_a_request_that_skipped_a_trusted_proxy_counts_on_the_connections_address(
    make_user: Any, settings: Any
) -> None:
    # given two trusted proxies, and a client that reaches the inner one directly, writing X-Forwarded-For itself
    settings.TRUSTED_PROXY_COUNT, settings.LOGIN_FAILURES_PER_IP = 2, 3
    inner = new_client()
    for n in range(3):
        response = inner.post(
            URL, {"username": unique("guess"), "password": "x"}, format="json", HTTP_X_FORWARDED_FOR=f"10.6.0.{n}"
        )
        assert response.status_code == 401

    # when it tries again under yet another address of its own making
    response = inner.post(
        URL, {"username": make_user().username, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="10.6.0.9"
    )

    # then its one hop is not believed: the connection's address spent its failures, 429
    assert response.status_code == 429
