"""Each seat of a CONFIRMED reservation has a ticket whose code a door device verifies with the public key."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.conftest import all_databases
from ticketing.audit.invariants import audit
from ticketing.concerts.models import Ticket
from ticketing.concerts.services import reservation_cancel, reservation_create

from .conftest import tickets_of

pytestmark = [all_databases]


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_confirmed_booking_of_two_seats_has_two_valid_tickets(confirmed: Any, client_for: Any) -> None:
    # given a confirmed booking of two seats
    reservation = confirmed(seats=2)

    # when its owner asks for the tickets
    response = client_for_owner(client_for, reservation).get(f"/api/reservations/{reservation.id}/tickets/")

    # then there is one VALID ticket per seat, each with its seat's label and a code
    assert response.status_code == 200, response.content
    body = response.json()
    assert [(t["label"], t["status"]) for t in body] == [("A-1", "VALID"), ("A-2", "VALID")]
    assert [t["seat_id"] for t in body] == [line.seat_id for line in reservation.lines.order_by("id")]
    assert all(t["code"].startswith("T1.") for t in body)


def client_for_owner(client_for: Any, reservation: Any) -> Any:
    from ticketing.accounts.models import User

    return client_for(User.objects.get(pk=reservation.user_id))


def test_a_ticket_code_verifies_with_the_served_public_key_alone(confirmed: Any, client_for: Any, api: Any) -> None:
    # given a ticket's code and the public key a door device downloads
    reservation = confirmed()
    (ticket,) = client_for_owner(client_for, reservation).get(f"/api/reservations/{reservation.id}/tickets/").json()
    key = api.get("/api/door/public-key/").json()
    assert key["algorithm"] == "Ed25519"

    # when the device checks the signature with that key (no database, no secret)
    version, payload, signature = ticket["code"].split(".")
    public_key = Ed25519PublicKey.from_public_bytes(unb64(key["public_key"]))
    public_key.verify(unb64(signature), f"{version}.{payload}".encode())  # raises if forged

    # then the payload names the ticket, its performance, its seat and the key
    claims = json.loads(unb64(payload))
    assert claims == {"k": key["key_id"], "t": ticket["id"], "p": reservation.seat.performance_id, "s": "A-1"}


def test_a_pending_booking_has_no_tickets_yet(make_user: Any, make_seats: Any, client_for: Any) -> None:
    user = make_user()
    (seat,) = make_seats()
    reservation = reservation_create(user_id=user.id, seat_id=seat.id)
    response = client_for(user).get(f"/api/reservations/{reservation.id}/tickets/")
    assert (response.status_code, response.json()) == (200, [])


def test_someone_elses_tickets_are_not_found(confirmed: Any, make_user: Any, client_for: Any) -> None:
    reservation = confirmed()
    response = client_for(make_user()).get(f"/api/reservations/{reservation.id}/tickets/")
    assert response.status_code == 404


def test_cancelling_a_confirmed_booking_voids_its_tickets(confirmed: Any) -> None:
    # given a confirmed booking of two seats
    reservation = confirmed(seats=2)

    # when its owner cancels it
    reservation_cancel(user_id=reservation.user_id, reservation_id=reservation.id)

    # then both tickets are VOID, and the audit agrees
    assert {t.status for t in tickets_of(reservation)} == {"VOID"}
    assert all(t.voided_at for t in tickets_of(reservation))
    assert audit() == []


def test_the_audit_names_a_checked_in_ticket_of_a_cancelled_booking(confirmed: Any) -> None:
    # given a ticket marked checked in without a check-in, and its booking cancelled behind the saga's back
    reservation = confirmed()
    (ticket,) = tickets_of(reservation)
    Ticket.objects.using("concerts").filter(pk=ticket.pk).update(status="CHECKED_IN", checked_in_at=ticket.issued_at)
    reservation.__class__.objects.using("concerts").filter(pk=reservation.pk).update(status="CANCELED")

    # then the audit names it (beside what it finds about the payment, which this test leaves out)
    assert f"A6.8: CHECKED_IN ticket {ticket.id} of CANCELED reservation {reservation.id}: admitted 0x" in audit()


def test_the_audit_names_a_confirmed_seat_without_a_ticket(confirmed: Any) -> None:
    reservation = confirmed()
    Ticket.objects.using("concerts").filter(reservation=reservation).delete()
    found = [line for line in audit() if line.startswith("A6.8")]  # (A6.2 too: no payment in this test)
    assert found == [f"A6.8: seat {reservation.seat_id} of CONFIRMED reservation {reservation.id} has no ticket"]
