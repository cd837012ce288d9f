"""Writes of tickets: issued with the saga's confirmation, void with a cancellation, checked in at the door."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .models import CheckIn, CheckInOutcome, Reservation, ReservationSeat, Ticket, TicketStatus
from .ticket_codes import BadTicketCode, ticket_code_verify

logger = logging.getLogger(__name__)

DB = "concerts"

TICKET_TRANSITIONS: dict[str, set[str]] = {
    TicketStatus.VALID: {TicketStatus.CHECKED_IN, TicketStatus.VOID},
    TicketStatus.CHECKED_IN: set(),  # a used ticket stays used: its booking can no longer be cancelled
    TicketStatus.VOID: set(),
}


class TicketUsed(Exception):
    """A ticket of the reservation has let someone in already."""


def tickets_issue(reservation: Reservation) -> None:
    """Inside the confirmation's transaction: one VALID ticket per seat. A repeat adds nothing."""
    lines = ReservationSeat.objects.using(DB).filter(reservation=reservation).order_by("id")
    Ticket.objects.using(DB).bulk_create(
        (
            Ticket(
                reservation=reservation,
                seat_id=line.seat_id,
                performance_id=line.performance_id,
                user_id=reservation.user_id,
            )
            for line in lines
        ),
        ignore_conflicts=True,
    )


def tickets_void(reservation: Reservation) -> None:
    """Inside the cancellation's transaction (the reservation locked): every ticket VOID, or TicketUsed
    (and nothing changes) when one has been checked in: a ticket that let someone in cannot be refunded."""
    tickets = list(Ticket.objects.using(DB).select_for_update().filter(reservation=reservation).order_by("id"))
    if any(ticket.status == TicketStatus.CHECKED_IN for ticket in tickets):
        raise TicketUsed("A ticket of this booking was already used at the door.")
    now = timezone.now()
    for ticket in tickets:
        if ticket.status == TicketStatus.VALID:
            ticket_move(ticket, TicketStatus.VOID)
            ticket.voided_at = now
            ticket.save(using=DB, update_fields=["status", "voided_at"])


def ticket_move(ticket: Ticket, target: str) -> None:
    if target not in TICKET_TRANSITIONS[ticket.status]:
        raise ValueError(f"ticket {ticket.id}: {ticket.status} -> {target}")
    ticket.status = target


@dataclass(frozen=True)
class CheckInResult:
    outcome: str  # a CheckInOutcome
    ticket: Ticket


def ticket_check_in(*, code: str, staff_user_id: int) -> CheckInResult:
    """Check the ticket of a scanned code in: ADMITTED the first time, refused (and recorded) after.

    The signature is checked before any query (BadTicketCode for a forged or malformed code). Two door
    devices scanning the same ticket at once queue on its row lock: the first admits, the second finds
    it CHECKED_IN and gets the first one's time.
    """
    claims = ticket_code_verify(code)
    with transaction.atomic(using=DB):
        ticket = (
            Ticket.objects.using(DB)
            .select_for_update(of=("self",))
            .select_related("seat", "performance__concert")
            .filter(pk=claims.ticket_id, performance_id=claims.performance_id)
            .first()
        )
        if ticket is None:  # signed by us, yet unknown here: a code of another installation's key
            raise BadTicketCode("No such ticket.")
        now = timezone.now()
        if ticket.status == TicketStatus.VALID:
            ticket_move(ticket, TicketStatus.CHECKED_IN)
            ticket.checked_in_at = now
            ticket.save(using=DB, update_fields=["status", "checked_in_at"])
            outcome = CheckInOutcome.ADMITTED
        else:
            outcome = CheckInOutcome.VOID if ticket.status == TicketStatus.VOID else CheckInOutcome.ALREADY_CHECKED_IN
        CheckIn.objects.using(DB).create(ticket=ticket, outcome=outcome, at=now, staff_user_id=staff_user_id)
    logger.info("ticket %s at the door: %s (staff user %s)", ticket.id, outcome, staff_user_id)
    return CheckInResult(outcome=str(outcome), ticket=ticket)
