"""GET /api/wallet/ and POST /api/wallet/charge/: the balance, top-ups, and what a charge may be."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from tests.conftest import all_databases
from ticketing.payments.models import Wallet, WalletEntry

pytestmark = [all_databases]

WALLET = "/api/wallet/"
CHARGE = "/api/wallet/charge/"


def entries_of(user_id: int) -> list[tuple[str, int]]:
    return list(WalletEntry.objects.using("payments").filter(wallet__user_id=user_id).values_list("kind", "amount"))


def test_a_new_users_balance_is_zero(make_user: Any, client_for: Any) -> None:
    # given a new user (no worker has opened a wallet yet)
    client = client_for(make_user())

    # when they look at their wallet
    response = client.get(WALLET)

    # then the balance is 0
    assert response.status_code == 200
    assert response.json() == {"balance": 0}


def test_charging_the_wallet_raises_the_balance_and_records_a_top_up(make_user: Any, client_for: Any) -> None:
    # given a new user
    user = make_user()
    client = client_for(user)

    # when they charge 5,000 won
    response = client.post(CHARGE, {"amount": 5000}, format="json")

    # then the balance is 5,000, the wallet says so, and the ledger holds one top-up of 5,000
    assert response.status_code == 200, response.content
    assert response.json() == {"balance": 5000}
    assert client.get(WALLET).json() == {"balance": 5000}
    assert entries_of(user.id) == [("TOPUP", 5000)]


def test_charges_add_up(make_user: Any, client_for: Any) -> None:
    # given a wallet charged once
    client = client_for(make_user())
    client.post(CHARGE, {"amount": 5000}, format="json")

    # when it is charged again
    response = client.post(CHARGE, {"amount": 2500}, format="json")

    # then the balance is the sum
    assert response.json() == {"balance": 7500}


@pytest.mark.parametrize("amount", [1, 100_000_000], ids=["smallest", "largest"])
def test_a_charge_may_be_any_whole_number_from_1_to_100_million(make_user: Any, client_for: Any, amount: int) -> None:
    # when a user charges a boundary amount
    response = client_for(make_user()).post(CHARGE, {"amount": amount}, format="json")

    # then it is accepted
    assert response.status_code == 200, response.content
    assert response.json() == {"balance": amount}


def test_a_users_charge_goes_to_their_own_wallet_only(make_user: Any, client_for: Any) -> None:
    # given two users
    alice, bob = make_user(), make_user()

    # when alice charges her wallet
    client_for(alice).post(CHARGE, {"amount": 5000}, format="json")

    # then bob's balance is untouched
    assert client_for(bob).get(WALLET).json() == {"balance": 0}


@pytest.mark.parametrize(
    "amount",
    [0, -1, 1.5, 1.0, "100", True, None, 100_000_001, 10**30, [100], {"won": 100}, ""],
    ids=[
        "zero",
        "negative",
        "fraction",
        "float",
        "string",
        "boolean",
        "null",
        "over-max",
        "huge",
        "list",
        "obj",
        "empty",
    ],
)
def test_a_charge_of_anything_but_1_to_100_million_whole_won_is_a_400_naming_amount(
    make_user: Any, client_for: Any, amount: Any
) -> None:
    # given a user
    user = make_user()

    # when they charge a malformed amount
    response = client_for(user).post(CHARGE, {"amount": amount}, format="json")

    # then it is a 400 naming amount, and no money moved
    assert response.status_code == 400, response.content
    assert "amount" in response.json()
    assert entries_of(user.id) == []


def test_a_charge_without_an_amount_is_a_400_naming_it(make_user: Any, client_for: Any) -> None:
    # when a user charges without an amount
    response = client_for(make_user()).post(CHARGE, {}, format="json")

    # then it is a 400 naming amount
    assert response.status_code == 400
    assert "amount" in response.json()


def test_a_charge_with_a_malformed_json_body_is_a_400(make_user: Any, client_for: Any) -> None:
    # when the body is not JSON
    response = client_for(make_user()).post(CHARGE, b"{bad", content_type="application/json")

    # then it is a 400, never a 500
    assert response.status_code == 400


def test_the_wallet_without_a_token_is_a_401(api: APIClient) -> None:
    # when someone without a token looks at a wallet
    # then it is a 401
    assert api.get(WALLET).status_code == 401


def test_charging_without_a_token_is_a_401(api: APIClient) -> None:
    # when someone without a token charges a wallet
    response = api.post(CHARGE, {"amount": 5000}, format="json")

    # then it is a 401 and no money moved
    assert response.status_code == 401
    assert not WalletEntry.objects.using("payments").exists()


def test_the_database_refuses_a_negative_balance(fund: Any) -> None:
    # given a wallet
    wallet = fund(4242, 100)

    # when its balance is set below zero behind the service's back
    with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
        Wallet.objects.using("payments").filter(pk=wallet.pk).update(balance=-1)

    # then the CHECK constraint refused it and the balance is unchanged
    assert Wallet.objects.using("payments").get(pk=wallet.pk).balance == 100
