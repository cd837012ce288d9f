"""Every service and every event, declared once.

An event is its name (what travels in the envelope), the service that publishes it, the services that
consume it, and its payload's fields with their types. Routes, queues, the consumer task names and the
checks of each service's handlers are derived from here; docs/CONTRACT.md §4 is generated from it
(``python manage.py events_table``). docs/ADDING_AN_EVENT.md walks through adding one.
"""

from __future__ import annotations

from datetime import datetime

from .schema import Catalogue, Payload, Service

ACCOUNTS = Service("accounts", database="default")
CONCERTS = Service("concerts", database="concerts")
PAYMENTS = Service("payments", database="payments")

CATALOGUE = Catalogue(services=(ACCOUNTS, CONCERTS, PAYMENTS))
event = CATALOGUE.event


class Reason:
    """Why a saga did not end in a sale: the ``reason`` of payment-fail, payment-refund and a
    reservation, one phrase of this small vocabulary meant for people. An error's text (hosts, SQL,
    exception reprs) never goes here: it stays in the logs, the outbox row and the dead letter."""

    INSUFFICIENT_BALANCE = "insufficient balance"
    WALLET_MISSING = "wallet missing"
    AMOUNT_MISMATCH = "amount mismatch"
    PAYMENT_ERROR = "payment error"
    HOLD_EXPIRED = "hold expired"
    UNDELIVERABLE = "payment request undeliverable"
    CANCELED_BY_USER = "canceled by user"

    # seat-released only: a waiting list's offer was not taken in time (no reservation ended)
    OFFER_LAPSED = "offer lapsed"

    # payments' answers to a concert-reserve it does not charge
    PAYMENT_REFUSALS = frozenset({INSUFFICIENT_BALANCE, WALLET_MISSING, AMOUNT_MISMATCH, PAYMENT_ERROR, HOLD_EXPIRED})
    ALL = PAYMENT_REFUSALS | {UNDELIVERABLE, CANCELED_BY_USER}  # a reservation's reasons
    SEAT_RELEASES = ALL | {OFFER_LAPSED}  # seat-released's reasons


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
    # The hold's deadline: no charge is made at or after it ("hold expired"). Absent in older messages.
    hold_until: datetime | None = None


@event("reservation-canceled", publisher=CONCERTS, consumers=[PAYMENTS])
class ReservationCanceled(Payload, frozen=True, kw_only=True):
    """the reservation ended unsold (compensated, expired, undeliverable or cancelled by its owner):
    payments makes no charge for it from then on"""

    reservation_id: int
    user_id: int
    reason: str = ""


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
    """give a reservation's payment back: the user cancelled, or the payment came after the reservation
    was cancelled"""

    reservation_id: int
    payment_id: int | None = None
    reason: str = ""


@event("payment-refunded", publisher=PAYMENTS, consumers=[CONCERTS])
class PaymentRefunded(Payload, frozen=True, kw_only=True):
    """the refund was made"""

    reservation_id: int
    payment_id: int
    amount: int


@event("seat-released", publisher=CONCERTS, consumers=[CONCERTS])
class SeatReleased(Payload, frozen=True, kw_only=True):
    """seats were given back (a compensation, an expired hold, a cancellation, a lapsed offer): offer them
    to the waiting list"""

    performance_id: int
    seat_ids: list[int]
    reason: str = ""


SERVICES = CATALOGUE.services
EVENTS = CATALOGUE.events
