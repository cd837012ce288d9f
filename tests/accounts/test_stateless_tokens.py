"""A token from accounts is checked by its signature alone: concerts and payments never ask accounts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.conftest import PASSWORD, all_databases, new_client
from ticketing.concerts.models import Reservation


def logged_in_client(username: str) -> APIClient:
    """A client holding the access token that accounts' login handed out."""
    response = new_client().post("/api/auth/login/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    client = new_client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return client


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def accounts_database_down() -> Iterator[None]:
    """Point the accounts (default) connection at a port where nothing listens; restore it after."""
    connection = connections["default"]
    saved = {key: connection.settings_dict.get(key) for key in ("HOST", "PORT")}
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=unused_port())
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        connection.ensure_connection()


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_concerts_and_payments_accept_a_token_while_the_accounts_database_is_down(
    make_user: Any, make_seats: Any, request: pytest.FixtureRequest
) -> None:
    # given a logged-in user with a reservation, and then the accounts database going away
    user = make_user()
    client = logged_in_client(user.username)
    (seat,) = make_seats()
    reservation = Reservation.objects.using("concerts").create(user_id=user.id, seat=seat, amount=seat.price)
    request.getfixturevalue("accounts_database_down")
    with pytest.raises(OperationalError):
        connections["default"].ensure_connection()

    # when the user uses the concerts and payments endpoints
    wallet = client.get("/api/wallet/")
    charge = client.post("/api/wallet/charge/", {"amount": 5000}, format="json")
    reservations = client.get("/api/reservations/")

    # then each of them serves the user, on the token alone
    assert wallet.status_code == 200, wallet.content
    assert wallet.json() == {"balance": 0}
    assert charge.status_code == 200, charge.content
    assert charge.json() == {"balance": 5000}
    assert reservations.status_code == 200, reservations.content
    assert [r["id"] for r in reservations.json()] == [reservation.id]


@all_databases
def test_concerts_and_payments_endpoints_send_no_query_to_the_accounts_database(
    make_user: Any, client_for: Any
) -> None:
    # given a user's authenticated client
    client = client_for(make_user())

    # when they use the concerts and payments endpoints
    with CaptureQueriesContext(connections["default"]) as accounts_queries:
        answers = [
            client.get("/api/wallet/"),
            client.post("/api/wallet/charge/", {"amount": 5000}, format="json"),
            client.get("/api/reservations/"),
            client.get("/api/payments/"),
        ]

    # then they all succeed without a single query to accounts
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert accounts_queries.captured_queries == []
