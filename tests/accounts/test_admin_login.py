"""/admin/login/: the same delay per account and per address as the API's login, on the same counters."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import PASSWORD, all_databases, new_client
from ticketing.accounts.models import User

pytestmark = [all_databases]

URL = "/admin/login/"


@pytest.fixture(autouse=True)
def long_first_wait(settings: Any) -> None:
    """A first wait far longer than a test's steps, so that "throttled now" never races the clock."""
    settings.LOGIN_DELAY_BASE_SECONDS = 30
    settings.LOGIN_DELAY_CAP_SECONDS = 60


@pytest.fixture
def staff(make_user: Any) -> User:
    user = make_user()
    user.is_staff = user.is_superuser = True
    user.save(using="default")
    return user


def admin_client() -> Client:
    """A browser of an address of its own (so the per-address counter never leaks between tests)."""
    return Client(REMOTE_ADDR=new_client().defaults["REMOTE_ADDR"])


def admin_login(client: Client, username: str, password: str) -> Any:
    return client.post(URL, {"username": username, "password": password, "next": "/admin/"})


def test_after_the_free_failures_the_right_password_must_wait(staff: User) -> None:
    # given an address that guessed the staff account's password wrong as often as it may for free
    client = admin_client()
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        assert admin_login(client, staff.username, "not-the-password-1").status_code == 200

    # when the right password is sent
    response = admin_login(client, staff.username, PASSWORD)

    # then it is refused with the wait named, and nobody is logged in
    assert response.status_code == 200
    assert "Too many failed attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_admin_failures_count_for_the_api_login_too(staff: User) -> None:
    # given the free failures spent on the admin's login page
    client = admin_client()
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        admin_login(client, staff.username, "not-the-password-1")

    # when the API's login is tried from elsewhere with the right password
    response = new_client().post("/api/auth/login/", {"username": staff.username, "password": PASSWORD}, format="json")

    # then the account waits there as well
    assert response.status_code == 429


def test_the_right_password_logs_staff_in(staff: User) -> None:
    client = admin_client()
    response = admin_login(client, staff.username, PASSWORD)
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_a_user_who_is_not_staff_is_refused(make_user: Any) -> None:
    client = admin_client()
    response = admin_login(client, make_user().username, PASSWORD)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
