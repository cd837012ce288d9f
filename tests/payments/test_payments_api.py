"""GET /api/payments/: the caller's payments and nobody else's."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tests.conftest import all_databases
from ticketing.payments.models import Payment

pytestmark = [all_databases]

URL = "/api/payments/"


def payment(user_id: int, reservation_id: int, amount: int = 50_000, status: str = "SUCCEEDED") -> Payment:
    return Payment.objects.using("payments").create(
        user_id=user_id, reservation_id=reservation_id, amount=amount, status=status
    )


def test_the_payment_list_shows_only_the_callers_payments(make_user: Any, client_for: Any) -> None:
    # given payments of alice and of bob
    alice, bob = make_user(), make_user()
    first = payment(alice.id, 9_001, 50_000)
    payment(bob.id, 9_002)
    second = payment(alice.id, 9_003, 20_000, "FAILED")

    # when alice lists her payments
    response = client_for(alice).get(URL)

    # then she sees her two, newest first, as {id, reservation_id, amount, status, ...}
    assert response.status_code == 200
    shown = [{k: p[k] for k in ("id", "reservation_id", "amount", "status")} for p in response.json()]
    assert shown == [
        {"id": second.id, "reservation_id": 9_003, "amount": 20_000, "status": "FAILED"},
        {"id": first.id, "reservation_id": 9_001, "amount": 50_000, "status": "SUCCEEDED"},
    ]


def test_a_user_without_payments_gets_an_empty_list(make_user: Any, client_for: Any) -> None:
    # given someone else's payment
    payment(make_user().id, 9_004)

    # when a user with none lists theirs
    response = client_for(make_user()).get(URL)

    # then the list is empty
    assert response.status_code == 200
    assert response.json() == []


def test_the_payment_list_without_a_token_is_a_401(api: APIClient) -> None:
    # when someone without a token lists payments
    # then it is a 401
    assert api.get(URL).status_code == 401
