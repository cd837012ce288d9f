"""A booking's saga as a person sees it: the steps so far, each with its time, and the outcome in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ticketing.events.catalogue import Reason
from ticketing.outbox.selectors import saga_timeline

DONE, CURRENT, FAILED, TODO = "done", "current", "failed", "todo"

# The reasons of the catalogue's vocabulary, in the words a person reads (the services speak to programs).
REASONS = {
    Reason.INSUFFICIENT_BALANCE: gettext_lazy("There was not enough money in your wallet."),
    Reason.HOLD_EXPIRED: gettext_lazy("The payment did not arrive in time, so the seat was released."),
    Reason.WALLET_MISSING: gettext_lazy("Your wallet could not be found."),
    Reason.AMOUNT_MISMATCH: gettext_lazy("The amount to pay was not valid."),
    Reason.UNDELIVERABLE: gettext_lazy("The payment request could not be delivered."),
    Reason.CANCELED_BY_USER: gettext_lazy("You cancelled this booking."),
}


def reason_in_words(reason: str) -> str:
    if reason.startswith(Reason.PAYMENT_ERROR):  # older rows kept the error's text after it
        return _("The payment could not be processed because of an error. No money was taken.")
    words = REASONS.get(reason)
    return str(words) if words is not None else reason


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    state: str
    at: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class Progress:
    status: str
    headline: str
    reason: str
    steps: list[Step]
    terminal: bool


def booking_progress(reservation: Any, payment: Any) -> Progress:
    """The steps of one reservation's saga; ``payment`` is its payment row, if payments made one yet."""
    requested_at = payment_requested_at(reservation.id) or (payment.created_at if payment else None)
    held = Step("held", _("Seat held"), DONE, reservation.created_at)
    requested = Step("requested", _("Payment requested"), DONE if requested_at else CURRENT, requested_at)
    status = reservation.status
    steps = [held, requested] if requested_at or status == "PENDING" else [held]
    paid = payment is not None and payment.status in {"SUCCEEDED", "REFUNDED"}
    if status == "PENDING":
        steps += [
            Step("paid", _("Paid"), CURRENT if requested_at else TODO),
            Step("confirmed", _("Confirmed"), TODO),
        ]
        return Progress(status, _("Your booking is being processed…"), "", steps, terminal=False)
    if status == "CONFIRMED":
        steps += [
            Step("paid", _("Paid"), DONE, payment.created_at if payment else None),
            Step("confirmed", _("Confirmed"), DONE, reservation.updated_at),
        ]
        return Progress(status, _("Your booking is confirmed."), "", steps, terminal=True)
    reason = reason_in_words(reservation.reason)
    if status == "SYSTEM_CANCELED":
        if payment is not None and payment.status == "FAILED":
            steps.append(Step("refused", _("Payment refused"), FAILED, payment.created_at, reason))
        steps.append(Step("released", _("Seat released"), DONE, reservation.updated_at))
        return Progress(status, _("The booking was cancelled by the system."), reason, steps, terminal=True)
    # CANCELED by its owner: a paid booking ends when the refund is in the wallet.
    if paid:
        steps.append(Step("paid", _("Paid"), DONE, payment.created_at))
    steps.append(Step("canceled", _("Cancelled"), DONE, reservation.updated_at))
    refunded = payment is not None and payment.status == "REFUNDED"
    if paid:
        steps.append(
            Step("refunded", _("Refunded"), DONE if refunded else CURRENT, payment.updated_at if refunded else None)
        )
    return Progress(status, _("You cancelled this booking."), "", steps, terminal=refunded or not paid)


def payment_requested_at(reservation_id: int) -> datetime | None:
    """When payments received the request to charge (its inbox row of concert-reserve)."""
    for row in saga_timeline(correlation_id=str(reservation_id)):
        if row.service == "payments" and row.kind == "consumed" and row.event == "concert-reserve":
            return row.at
    return None
