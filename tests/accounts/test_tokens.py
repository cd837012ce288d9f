"""POST /api/auth/refresh/ and GET /api/auth/me/: only tokens signed by accounts with HS256 are accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.conftest import PASSWORD, access_token, all_databases, new_client
from ticketing.accounts.tasks import tokens_expire

pytestmark = [all_databases]

ME = "/api/auth/me/"
REFRESH = "/api/auth/refresh/"


def tokens_of(user: Any) -> dict[str, str]:
    response = new_client().post("/api/auth/login/", {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def me(token: str) -> Any:
    client = new_client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(ME)


def claims_of(user: Any) -> dict[str, Any]:
    return dict(AccessToken.for_user(user).payload)


# --- refresh -------------------------------------------------------------------------------------------


def test_a_valid_refresh_token_gets_a_new_access_token(api: APIClient, make_user: Any) -> None:
    # given a user's refresh token from login
    user = make_user()
    refresh = tokens_of(user)["refresh"]

    # when it is exchanged
    response = api.post(REFRESH, {"refresh": refresh}, format="json")

    # then the answer is a new access token for the same user, and a new refresh token
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"access", "refresh"}
    assert response.json()["refresh"] != refresh
    assert AccessToken(response.json()["access"])["user_id"] == str(user.id)
    assert me(response.json()["access"]).status_code == 200


@pytest.mark.parametrize("refresh", ["garbage", "", "a.b.c"], ids=["garbage", "empty", "three-dots"])
def test_a_garbage_refresh_token_is_refused(api: APIClient, refresh: str) -> None:
    # when garbage is sent as a refresh token
    response = api.post(REFRESH, {"refresh": refresh}, format="json")

    # then it is refused with a 401 (or a 400 for a blank field), never a 500
    assert response.status_code == (400 if refresh == "" else 401), response.content


def test_an_access_token_is_not_accepted_as_a_refresh_token(api: APIClient, make_user: Any) -> None:
    # given a user's access token
    access = tokens_of(make_user())["access"]

    # when it is sent as a refresh token
    response = api.post(REFRESH, {"refresh": access}, format="json")

    # then it is a 401
    assert response.status_code == 401, response.content


def test_the_refresh_token_of_a_deleted_user_is_a_401(api: APIClient, make_user: Any) -> None:
    # given the refresh token of a user who was then deleted
    user = make_user()
    refresh = str(RefreshToken.for_user(user))
    user.delete(using="default")

    # when it is exchanged
    response = api.post(REFRESH, {"refresh": refresh}, format="json")

    # then it is a 401: without valid credentials, not a 404
    assert response.status_code == 401, response.content


def test_a_refresh_token_works_once_and_its_successor_works_next(api: APIClient, make_user: Any) -> None:
    # given a refresh token that was exchanged once
    first = tokens_of(make_user())["refresh"]
    second = api.post(REFRESH, {"refresh": first}, format="json").json()["refresh"]

    # when the used one is sent again, and then the one it was exchanged for
    replayed = api.post(REFRESH, {"refresh": first}, format="json")
    rotated = api.post(REFRESH, {"refresh": second}, format="json")

    # then the used one is refused and its successor works
    assert replayed.status_code == 401, replayed.content
    assert rotated.status_code == 200, rotated.content


def test_the_refresh_token_of_a_deactivated_user_is_a_401(api: APIClient, make_user: Any) -> None:
    # given a user's refresh token, and the account deactivated since
    user = make_user()
    refresh = tokens_of(user)["refresh"]
    user.is_active = False
    user.save(using="default")

    # when it is exchanged
    response = api.post(REFRESH, {"refresh": refresh}, format="json")

    # then it is refused
    assert response.status_code == 401, response.content


def test_a_password_change_ends_every_refresh_token_and_session(api: APIClient, make_user: Any) -> None:
    # given a user logged in on two devices and in the shop
    user = make_user()
    devices = [tokens_of(user)["refresh"] for _ in range(2)]
    browser = Client()
    browser.force_login(user)
    assert browser.get("/wallet/").status_code == 200

    # when the password is changed (as the admin's form and `changepassword` do)
    user.set_password("another-horse-battery-7")
    user.save(using="default")

    # then neither device can refresh, and the shop asks for a login again
    assert [api.post(REFRESH, {"refresh": r}, format="json").status_code for r in devices] == [401, 401]
    assert browser.get("/wallet/").status_code == 302


def test_other_changes_to_a_user_keep_their_refresh_tokens(api: APIClient, make_user: Any) -> None:
    user = make_user()
    refresh = tokens_of(user)["refresh"]
    user.email = "kim@example.com"
    user.save(using="default")
    assert api.post(REFRESH, {"refresh": refresh}, format="json").status_code == 200


def test_expired_refresh_tokens_are_forgotten(make_user: Any) -> None:
    # given a refresh token past its expiry and one still valid
    user = make_user()
    tokens_of(user)
    tokens_of(user)
    expired, valid = OutstandingToken.objects.filter(user_id=user.id).order_by("id")
    OutstandingToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    # when the beat task runs
    tokens_expire()

    # then the expired one is gone and the valid one stays
    assert list(OutstandingToken.objects.filter(user_id=user.id)) == [valid]


# --- me ------------------------------------------------------------------------------------------------


def test_me_answers_the_callers_id_and_username(make_user: Any) -> None:
    # given a user's access token from login
    user = make_user()
    access = tokens_of(user)["access"]

    # when they ask who they are
    response = me(access)

    # then the answer is their id and username
    assert response.status_code == 200, response.content
    assert response.json() == {"id": user.id, "username": user.username}


def test_me_without_a_token_is_a_401(api: APIClient) -> None:
    # when nobody asks who they are
    response = api.get(ME)

    # then it is a 401
    assert response.status_code == 401


def test_me_with_a_token_of_a_deleted_user_is_a_401(make_user: Any) -> None:
    # given the access token of a user who was then deleted
    user = make_user()
    token = access_token(user)
    user.delete(using="default")

    # when it is used
    # then it is a 401
    assert me(token).status_code == 401


def test_a_token_signed_with_another_key_is_a_401(make_user: Any) -> None:
    # given a token with the right claims but signed with a key that is not the server's
    forged = jwt.encode(claims_of(make_user()), "not-the-server-key-" * 3, algorithm="HS256")

    # when it is used
    # then it is a 401
    assert me(forged).status_code == 401


def test_an_expired_token_is_a_401(make_user: Any) -> None:
    # given a token signed by the server that expired an hour ago
    token = AccessToken.for_user(make_user())
    token.set_exp(from_time=datetime.now(tz=UTC) - timedelta(hours=2), lifetime=timedelta(hours=1))

    # when it is used
    # then it is a 401
    assert me(str(token)).status_code == 401


def test_a_token_with_alg_none_is_a_401(make_user: Any) -> None:
    # given an unsigned token ("alg": "none") with valid claims
    unsigned = jwt.encode(claims_of(make_user()), None, algorithm="none")

    # when it is used
    # then it is a 401
    assert me(unsigned).status_code == 401


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_token_signed_with_another_algorithm_is_a_401(make_user: Any) -> None:
    # given a token with valid claims signed with the server's key but HS512 (HS256 is pinned)
    token = jwt.encode(claims_of(make_user()), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS512")

    # when it is used
    # then it is a 401
    assert me(token).status_code == 401


def test_a_control_token_signed_like_the_server_is_accepted(make_user: Any) -> None:
    # given a token built by hand exactly as the server signs them
    token = jwt.encode(claims_of(make_user()), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")

    # when it is used
    # then it is accepted (so the refusals above are about the key, algorithm and expiry)
    assert me(token).status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer garbage", "Basic a2ltOnB3", "Token abc"], ids=str)
def test_a_malformed_authorization_header_is_a_401(api: APIClient, header: str) -> None:
    # when the Authorization header is not a bearer JWT
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get(ME)

    # then it is a 401
    assert response.status_code == 401
