"""Where the money is taken from. The wallet is the default gateway; an external one plugs in here.

``settings.PAYMENTS_GATEWAY`` names the class. A gateway raises ``GatewayError`` for trouble that may
pass (the consumer retries it with backoff and, past a bound, fails the payment); a refusal is not
the gateway's business here: the service checks the balance before it asks.
"""

from __future__ import annotations

import time
from typing import Protocol

from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

from ticketing.outbox.consume import TransientError

from .ledger import wallet_post
from .models import EntryKind, Wallet


class GatewayError(TransientError):
    pass


class GatewayTimeout(GatewayError):
    pass


class PaymentGateway(Protocol):
    def charge(self, *, wallet: Wallet, amount: int, reservation_id: int) -> None: ...


class WalletGateway:
    """Charge the user's wallet: a ledger entry in the caller's transaction (the wallet row is locked)."""

    def charge(self, *, wallet: Wallet, amount: int, reservation_id: int) -> None:
        wallet_post(wallet, EntryKind.CHARGE, amount, reservation_id)


FAULT_KEY = "payments:gateway-fault"


class FaultInjectingGateway(WalletGateway):
    """For tests and chaos runs: the wallet gateway, but failing as told through the cache (Redis).

    ``fault_inject("error" | "timeout" | "slow", times=n, delay=s)`` makes the next n charges, in any
    worker process, raise an error, time out after ``delay`` seconds, or succeed after ``delay``.
    """

    def charge(self, *, wallet: Wallet, amount: int, reservation_id: int) -> None:
        fault = cache.get(FAULT_KEY)
        if fault and cache.decr(f"{FAULT_KEY}:remaining") >= 0:
            if fault["mode"] in ("timeout", "slow"):
                time.sleep(fault["delay"])
            if fault["mode"] == "timeout":
                raise GatewayTimeout(f"gateway timed out after {fault['delay']}s (injected)")
            if fault["mode"] == "error":
                raise GatewayError("gateway error (injected)")
        super().charge(wallet=wallet, amount=amount, reservation_id=reservation_id)


def fault_inject(mode: str, *, times: int, delay: float = 0.0) -> None:
    cache.set(f"{FAULT_KEY}:remaining", times, timeout=3600)
    cache.set(FAULT_KEY, {"mode": mode, "delay": delay}, timeout=3600)


def fault_clear() -> None:
    cache.delete_many([FAULT_KEY, f"{FAULT_KEY}:remaining"])


def gateway() -> PaymentGateway:
    gateway_class: type[PaymentGateway] = import_string(settings.PAYMENTS_GATEWAY)
    return gateway_class()
