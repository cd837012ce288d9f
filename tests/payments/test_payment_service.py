"""payment_charge, the saga's charge step, without workers: outcome, ledger, event, and repeats."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from django.db import transaction

from tests.conftest import all_databases
from ticketing.outbox.models import OutboxMessage
from ticketing.payments.models import Payment, Wallet, WalletEntry
from ticketing.payments.services import payment_charge, payment_give_up

pytestmark = [all_databases]

_ids = itertools.count(random.randint(10**6, 10**9))


def new_id() -> int:
    return next(_ids)


def charge(**kwargs: Any) -> Payment | None:
    """As the consumer calls it: inside the payments transaction."""
    with transaction.atomic(using="payments"):
        return payment_charge(**kwargs)


def balance_of(user_id: int) -> int:
    return Wallet.objects.using("payments").get(user_id=user_id).balance


def events(event: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.using("payments").filter(event=event))


def test_a_funded_charge_succeeds_and_takes_the_money(fund: Any) -> None:
    # given a wallet holding 80,000
    user_id, reservation_id = new_id(), new_id()
    fund(user_id, 80_000)

    # when a reservation of 50,000 is charged
    payment = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # then the payment succeeded, the ledger has the charge and the balance dropped by 50,000
    assert payment is not None
    assert (payment.status, payment.amount, payment.reason) == ("SUCCEEDED", 50_000, "")
    assert balance_of(user_id) == 30_000
    charges = WalletEntry.objects.using("payments").filter(wallet__user_id=user_id, kind="CHARGE")
    assert list(charges.values_list("amount", "reservation_id")) == [(50_000, reservation_id)]


def test_a_successful_charge_announces_payment_success(fund: Any) -> None:
    # given a funded wallet
    user_id, reservation_id = new_id(), new_id()
    fund(user_id, 80_000)

    # when a reservation is charged
    payment = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # then a payment-success event waits in the payments outbox, and no payment-fail
    assert payment is not None
    (message,) = events("payment-success")
    assert message.payload == {"reservation_id": reservation_id, "payment_id": payment.id}
    assert events("payment-fail") == []


def test_a_charge_the_balance_cannot_cover_fails_and_takes_nothing(fund: Any) -> None:
    # given a wallet holding 10,000
    user_id, reservation_id = new_id(), new_id()
    fund(user_id, 10_000)

    # when a reservation of 50,000 is charged
    payment = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # then the payment failed for insufficient balance, the money stayed, and payment-fail was announced
    assert payment is not None
    assert (payment.status, payment.reason) == ("FAILED", "insufficient balance")
    assert balance_of(user_id) == 10_000
    assert not WalletEntry.objects.using("payments").filter(kind="CHARGE").exists()
    (message,) = events("payment-fail")
    assert message.payload == {"reservation_id": reservation_id, "reason": "insufficient balance"}
    assert events("payment-success") == []


def test_a_charge_of_exactly_the_balance_succeeds(fund: Any) -> None:
    # given a wallet holding exactly the amount
    user_id = new_id()
    fund(user_id, 50_000)

    # when that amount is charged
    payment = charge(reservation_id=new_id(), user_id=user_id, amount=50_000)

    # then it succeeds and the balance is zero
    assert payment is not None
    assert payment.status == "SUCCEEDED"
    assert balance_of(user_id) == 0


def test_a_charge_without_a_wallet_fails_with_wallet_missing() -> None:
    # given a user without a wallet
    user_id, reservation_id = new_id(), new_id()

    # when a reservation is charged
    payment = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # then the payment failed because the wallet is missing, and payment-fail was announced
    assert payment is not None
    assert (payment.status, payment.reason) == ("FAILED", "wallet missing")
    (message,) = events("payment-fail")
    assert message.payload == {"reservation_id": reservation_id, "reason": "wallet missing"}
    assert not Wallet.objects.using("payments").filter(user_id=user_id).exists()


@pytest.mark.parametrize(
    "amount",
    ["abc", "50000", 0, -5, 1.5, True, None, 100_000_001],
    ids=["text", "numeric-string", "zero", "negative", "fraction", "boolean", "null", "over-max"],
)
def test_a_charge_of_a_malformed_amount_fails_with_amount_mismatch(fund: Any, amount: Any) -> None:
    # given a wallet with plenty of money
    user_id, reservation_id = new_id(), new_id()
    fund(user_id, 100_000_000)

    # when a reservation is charged with an amount that is not 1 to 100,000,000 whole won
    payment = charge(reservation_id=reservation_id, user_id=user_id, amount=amount)

    # then the payment failed for amount mismatch, nothing was taken, and payment-fail was announced
    assert payment is not None
    assert (payment.status, payment.reason) == ("FAILED", "amount mismatch")
    assert balance_of(user_id) == 100_000_000
    (message,) = events("payment-fail")
    assert message.payload == {"reservation_id": reservation_id, "reason": "amount mismatch"}


def test_charging_the_same_reservation_twice_charges_once(fund: Any) -> None:
    # given a reservation already charged
    user_id, reservation_id = new_id(), new_id()
    fund(user_id, 80_000)
    first = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # when the charge request comes again
    again = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # then it is a no-op: one payment, one charge, one event
    assert first is not None
    assert again is None
    assert list(Payment.objects.using("payments").filter(reservation_id=reservation_id)) == [first]
    assert balance_of(user_id) == 30_000
    assert len(events("payment-success")) == 1


def test_a_refused_reservation_is_not_charged_later_when_money_arrives(fund: Any) -> None:
    # given a reservation refused for insufficient balance
    user_id, reservation_id = new_id(), new_id()
    fund(user_id, 10_000)
    refused = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # when money arrives and the same charge request comes again
    fund(user_id, 90_000)
    again = charge(reservation_id=reservation_id, user_id=user_id, amount=50_000)

    # then it is a no-op: still refused, nothing taken, one payment-fail event and no success
    assert refused is not None
    assert again is None
    assert Payment.objects.using("payments").get(reservation_id=reservation_id).status == "FAILED"
    assert balance_of(user_id) == 100_000
    assert (len(events("payment-fail")), len(events("payment-success"))) == (1, 0)


def test_a_payment_given_up_on_tells_the_user_payment_error_and_nothing_internal(fund: Any) -> None:
    # given a funded user whose charge kept failing with a database error
    user_id, reservation_id = new_id(), new_id()
    fund(user_id, 80_000)
    error = 'gave up after 3 retries: connection to server at "db.internal" (10.0.0.5), port 5432 failed'

    # when the consumer gives up on the charge
    with transaction.atomic(using="payments"):
        payment_give_up(reservation_id=reservation_id, user_id=user_id, reason=error)

    # then the payment and the payment-fail event say "payment error", and no part of the error
    payment = Payment.objects.using("payments").get(reservation_id=reservation_id)
    (announced,) = [e for e in events("payment-fail") if e.payload["reservation_id"] == reservation_id]
    assert (payment.status, payment.reason) == ("FAILED", "payment error")
    assert announced.payload["reason"] == "payment error"
