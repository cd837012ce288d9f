"""Every service and every event, declared once.

An event is its name (what travels in the envelope), the service that publishes it, the services that
consume it, and its payload's fields with their types. Routes, queues, the consumer task names and the
checks of each service's handlers are derived from here; docs/CONTRACT.md §4 is generated from it
(``python manage.py events_table``). docs/ADDING_AN_EVENT.md walks through adding one.
"""

from __future__ import annotations

from .schema import Catalogue, Payload, Service

ACCOUNTS = Service("accounts", database="default")
CONCERTS = Service("concerts", database="concerts")
PAYMENTS = Service("payments", database="payments")

CATALOGUE = Catalogue(services=(ACCOUNTS, CONCERTS, PAYMENTS))
event = CATALOGUE.event


@event("user-registered", publisher=ACCOUNTS, consumers=[PAYMENTS])
class UserRegistered(Payload, frozen=True, kw_only=True):
    """open a wallet for a new user"""

    user_id: int


@event("concert-reserve", publisher=CONCERTS, consumers=[PAYMENTS])
class ConcertReserve(Payload, frozen=True, kw_only=True):
    """a PENDING reservation asks to be paid"""

    reservation_id: int
    user_id: int
    amount: int  # whole won; payments checks the range (a wrong amount is refused, "amount mismatch")


@event("payment-success", publisher=PAYMENTS, consumers=[CONCERTS])
class PaymentSuccess(Payload, frozen=True, kw_only=True):
    """the charge went through"""

    reservation_id: int
    payment_id: int


@event("payment-fail", publisher=PAYMENTS, consumers=[CONCERTS])
class PaymentFail(Payload, frozen=True, kw_only=True):
    """the charge was refused or could not be made"""

    reservation_id: int
    reason: str = ""


@event("payment-refund", publisher=CONCERTS, consumers=[PAYMENTS])
class PaymentRefund(Payload, frozen=True, kw_only=True):
    """give a reservation's payment back"""

    reservation_id: int
    payment_id: int | None = None
    reason: str = ""


@event("payment-refunded", publisher=PAYMENTS, consumers=[CONCERTS])
class PaymentRefunded(Payload, frozen=True, kw_only=True):
    """the refund was made"""

    reservation_id: int
    payment_id: int
    amount: int


SERVICES = CATALOGUE.services
EVENTS = CATALOGUE.events
