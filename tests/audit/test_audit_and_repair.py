"""The audit finds every broken invariant; the repair drives stuck sagas to an end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone

from tests.conftest import all_databases
from ticketing.audit import invariants
from ticketing.audit.invariants import audit
from ticketing.audit.repair import repair
from ticketing.concerts.models import Reservation, ReservationSeat, Seat
from ticketing.concerts.services import reservation_confirm, reservation_create
from ticketing.outbox.models import OutboxMessage, OutboxState
from ticketing.payments.models import Payment, Wallet
from ticketing.payments.services import payment_charge

pytestmark = [all_databases]


def test_a_consistent_world_passes_the_audit(make_user: Any, make_seats: Any, fund: Any) -> None:
    user = make_user()
    fund(user.id, 100_000)
    (seat,) = make_seats()
    reservation_create(user_id=user.id, seat_id=seat.id)
    assert audit() == []


def test_a_seat_sold_without_a_confirmed_reservation_is_named(make_seats: Any) -> None:
    (seat,) = make_seats()
    Seat.objects.using("concerts").filter(pk=seat.pk).update(status="SOLD")
    assert audit() == [f"A6.4: seat {seat.pk} is SOLD but its live reservation is none"]


def test_a_confirmed_reservation_without_a_payment_is_named(make_user: Any, make_seats: Any) -> None:
    (seat,) = make_seats()
    reservation = reservation_create(user_id=make_user().id, seat_id=seat.id)
    Reservation.objects.using("concerts").filter(pk=reservation.pk).update(status="CONFIRMED")
    Seat.objects.using("concerts").filter(pk=seat.pk).update(status="SOLD")
    assert audit() == [
        f"A6.2: CONFIRMED reservation {reservation.pk} has 0 successful payments of 50000",
        f"A6.8: seat {seat.pk} of CONFIRMED reservation {reservation.pk} has no ticket",  # confirmed behind the saga
    ]


def test_a_cancelled_reservation_that_kept_the_money_is_named(make_user: Any, make_seats: Any, fund: Any) -> None:
    user = make_user()
    fund(user.id, 100_000)
    (seat,) = make_seats()
    reservation = reservation_create(user_id=user.id, seat_id=seat.id)
    with transaction.atomic(using="payments"):
        payment = payment_charge(reservation_id=reservation.id, user_id=user.id, amount=reservation.amount)
    Reservation.objects.using("concerts").filter(pk=reservation.pk).update(status="SYSTEM_CANCELED")
    ReservationSeat.objects.using("concerts").filter(reservation=reservation).update(live=False)
    Seat.objects.using("concerts").filter(pk=seat.pk).update(status="AVAILABLE")
    assert payment is not None
    assert audit() == [f"A6.3: SYSTEM_CANCELED reservation {reservation.pk} kept successful payment {payment.pk}"]


def test_a_wallet_off_its_ledger_is_named(make_user: Any, fund: Any) -> None:
    user = make_user()
    wallet = fund(user.id, 1_000)
    Wallet.objects.using("payments").filter(pk=wallet.pk).update(balance=2_000)
    assert audit() == [f"A6.5: wallet {wallet.pk} (user {user.id}) holds 2000 but its ledger sums to 1000"]


def test_an_unsent_outbox_row_is_named_once_the_system_is_idle(make_user: Any, make_seats: Any) -> None:
    (seat,) = make_seats()
    reservation_create(user_id=make_user().id, seat_id=seat.id)
    assert audit(idle=True) == ["A6.7: 1 outbox rows of concerts are still unsent"]


def test_the_command_exits_non_zero_naming_each_violation(make_seats: Any, capsys: Any) -> None:
    seat, other = make_seats(count=2)
    Seat.objects.using("concerts").filter(pk__in=[seat.pk, other.pk]).update(status="HELD")
    with pytest.raises(CommandError, match="2 invariant violation"):
        call_command("audit_sagas")
    err = capsys.readouterr().err
    assert f"seat {seat.pk} is HELD" in err
    assert f"seat {other.pk} is HELD" in err


def test_repair_compensates_a_booking_whose_payment_request_went_dead(make_user: Any, make_seats: Any) -> None:
    # given a PENDING booking whose concert-reserve could never be delivered
    (seat,) = make_seats()
    reservation = reservation_create(user_id=make_user().id, seat_id=seat.id)
    OutboxMessage.objects.using("concerts").filter(correlation_id=str(reservation.id)).update(state=OutboxState.DEAD)

    # when the repair runs
    call_command("audit_sagas", "--repair")

    # then the booking is system-cancelled with the reason and the seat is free
    reservation.refresh_from_db(using="concerts")
    assert (reservation.status, reservation.reason) == ("SYSTEM_CANCELED", "payment request undeliverable")
    assert Seat.objects.using("concerts").get(pk=seat.pk).status == "AVAILABLE"


def test_repair_asks_again_for_a_refund_that_never_came(make_user: Any, make_seats: Any, fund: Any) -> None:
    # given a cancelled booking whose payment went through and was never refunded
    user = make_user()
    fund(user.id, 100_000)
    (seat,) = make_seats()
    reservation = reservation_create(user_id=user.id, seat_id=seat.id)
    with transaction.atomic(using="payments"):
        payment_charge(reservation_id=reservation.id, user_id=user.id, amount=reservation.amount)
    a_minute_ago = timezone.now() - timedelta(minutes=1)
    Reservation.objects.using("concerts").filter(pk=reservation.pk).update(
        status="SYSTEM_CANCELED", reason="x", updated_at=a_minute_ago
    )

    # when the repair runs
    actions = repair()

    # then it says so, and a payment-refund request is in the concerts outbox
    assert actions == ["asked again for the refund of 1 cancelled reservations still charged"]
    assert OutboxMessage.objects.using("concerts").filter(event="payment-refund").count() == 1


def test_a_successful_payment_for_no_reservation_is_named() -> None:
    # given a successful payment whose reservation concerts never had
    payment = Payment.objects.using("payments").create(
        reservation_id=987_654_321, user_id=1, amount=1_000, status="SUCCEEDED"
    )
    # then the audit names it
    assert audit() == [f"A6.3: successful payment {payment.pk} is for unknown reservation 987654321"]


def test_each_invariant_names_its_first_violations_and_counts_the_rest(
    make_seats: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given three seats sold without a reservation, and an audit that names at most two per invariant
    monkeypatch.setattr(invariants, "MAX_REPORTED", 2)
    seats = make_seats(count=3)
    Seat.objects.using("concerts").filter(pk__in=[s.pk for s in seats]).update(status="SOLD")

    # then two are named and the third is counted
    assert audit() == [
        f"A6.4: seat {seats[0].pk} is SOLD but its live reservation is none",
        f"A6.4: seat {seats[1].pk} is SOLD but its live reservation is none",
        "A6.4: ... and 1 more",
    ]


@override_settings(MAX_SEATS_PER_USER=10)
def test_reservations_and_payments_are_matched_across_the_databases_in_id_order(
    make_user: Any, make_seats: Any, fund: Any
) -> None:
    # given many bookings, every other one paid and confirmed, one of them confirmed without payment
    user = make_user()
    fund(user.id, 10_000_000)
    seats = make_seats(count=9, price=1_000)
    reservations = [reservation_create(user_id=user.id, seat_id=seat.id) for seat in seats]
    for reservation in reservations[::2]:
        with transaction.atomic(using="payments"):
            payment_charge(reservation_id=reservation.pk, user_id=user.id, amount=reservation.amount)
        reservation_confirm(reservation_id=reservation.pk, payment_id=1)
    unpaid = reservations[3]
    reservation_confirm(reservation_id=unpaid.pk, payment_id=1)

    # then only the unpaid confirmed one is named
    assert audit() == [f"A6.2: CONFIRMED reservation {unpaid.pk} has 0 successful payments of 1000"]


def test_a_cancelled_booking_whose_seat_line_stayed_live_is_named(make_user: Any, make_seats: Any) -> None:
    # given a booking of two seats cancelled without clearing one seat's live flag
    seat, other = make_seats(count=2)
    reservation = reservation_create(user_id=make_user().id, seat_ids=[seat.id, other.id])
    Reservation.objects.using("concerts").filter(pk=reservation.pk).update(status="CANCELED")
    ReservationSeat.objects.using("concerts").filter(reservation=reservation, seat=seat).update(live=False)
    Seat.objects.using("concerts").filter(pk__in=[seat.pk, other.pk]).update(status="AVAILABLE")

    # then the audit names the line that still blocks the seat
    assert audit() == [f"A6.1: seat {other.pk} of CANCELED reservation {reservation.pk} has live=True"]


def test_the_database_refuses_a_second_live_booking_of_a_seat_of_a_multi_seat_booking(
    make_user: Any, make_seats: Any
) -> None:
    # given a live booking of two seats and another booking of a third
    a, b, c = make_seats(count=3)
    reservation_create(user_id=make_user().id, seat_ids=[a.id, b.id])
    second = reservation_create(user_id=make_user().id, seat_ids=[c.id])

    # when a write tries to make the second booking hold one of the first booking's seats too
    # then the database refuses it
    with pytest.raises(IntegrityError, match="concerts_one_live_line_per_seat"), transaction.atomic(using="concerts"):
        ReservationSeat.objects.using("concerts").filter(reservation=second).update(seat=b)
