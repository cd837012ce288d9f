"""A booking's saga as a person sees it: the steps so far, each with its time, and the outcome in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ticketing.concerts.selectors import SagaSteps
from ticketing.events.catalogue import Reason

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


def booking_progress(reservation: Any, saga: SagaSteps) -> Progress:
    """The steps of one reservation's saga, from what concerts knows: the reservation and ``saga``, its
    own record of the payment request and of payments' answers (concerts.selectors.reservation_saga_steps)."""
    held = Step("held", _("Seat held"), DONE, reservation.created_at)
    requested = Step("requested", _("Payment requested"), DONE if saga.requested_at else CURRENT, saga.requested_at)
    status = reservation.status
    steps = [held, requested] if saga.requested_at or status == "PENDING" else [held]
    if status == "PENDING":
        steps += [
            Step("paid", _("Paid"), CURRENT if saga.requested_at else TODO),
            Step("confirmed", _("Confirmed"), TODO),
        ]
        return Progress(status, _("Your booking is being processed…"), "", steps, terminal=False)
    if status == "CONFIRMED":
        steps += [
            Step("paid", _("Paid"), DONE, saga.paid_at),
            Step("confirmed", _("Confirmed"), DONE, reservation.updated_at),
        ]
        return Progress(status, _("Your booking is confirmed."), "", steps, terminal=True)
    if status == "SYSTEM_CANCELED":
        reason = reason_in_words(reservation.reason)
        if saga.refused_at:
            steps.append(Step("refused", _("Payment refused"), FAILED, saga.refused_at, reason))
        steps.append(Step("released", _("Seat released"), DONE, reservation.updated_at))
        steps += refund_steps(saga)  # a payment that came after the cancellation is given back
        return Progress(
            status, _("The booking was cancelled by the system."), reason, steps, terminal=refund_ended(saga)
        )
    # CANCELED by its owner (paid first, if it was): a paid booking ends when the refund is in the wallet.
    paid, refunded = refund_steps(saga) or (None, None)
    steps += [step for step in (paid, Step("canceled", _("Cancelled"), DONE, reservation.updated_at), refunded) if step]
    return Progress(status, _("You cancelled this booking."), "", steps, terminal=refund_ended(saga))


def refund_steps(saga: SagaSteps) -> list[Step]:
    """Paid, then refunded (or being refunded): for a cancelled booking that a payment reached."""
    if not saga.paid_at:
        return []
    refunded = DONE if saga.refunded_at else CURRENT
    return [Step("paid", _("Paid"), DONE, saga.paid_at), Step("refunded", _("Refunded"), refunded, saga.refunded_at)]


def refund_ended(saga: SagaSteps) -> bool:
    """A cancelled booking's saga is over unless a payment reached concerts and its refund has not yet."""
    return not saga.paid_at or saga.refunded_at is not None
