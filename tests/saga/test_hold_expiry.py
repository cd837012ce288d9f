"""Hold expiry, and a payment that arrives after it: the user gets the money back."""

from __future__ import annotations

from typing import Any

from tests.conftest import saga
from ticketing.concerts.models import Seat
from ticketing.concerts.services import reservation_expire_holds
from ticketing.payments.models import EntryKind, Payment, Wallet, WalletEntry

from .conftest import Booking, RowLock, book, settled, wait_for

pytestmark = [saga]


def test_a_payment_arriving_after_the_hold_expired_is_refunded(
    audited: None, stalled_payment: tuple[Booking, RowLock]
) -> None:
    # given a booking whose payment is held up inside the payments worker
    booking, locker = stalled_payment
    reservation_id = booking.reservation_id

    # when the hold expires first, and only then the payment goes through
    assert reservation_expire_holds(hold_seconds=0) == 1
    locker.release()

    # then the reservation stays canceled, the seat free, and the charge is refunded
    reservation = settled(reservation_id)
    assert (reservation.status, reservation.reason) == ("SYSTEM_CANCELED", "hold expired")
    assert Seat.objects.using("concerts").get(pk=booking.seat_id).status == "AVAILABLE"
    wait_for(
        lambda: Payment.objects.using("payments").filter(reservation_id=reservation_id, status="REFUNDED").exists(),
        what="the refund",
    )
    assert Wallet.objects.using("payments").get(user_id=booking.user.id).balance == 100_000
    kinds = sorted(WalletEntry.objects.using("payments").values_list("kind", flat=True))
    assert kinds == sorted([EntryKind.TOPUP, EntryKind.CHARGE, EntryKind.REFUND])


def test_the_sweeper_leaves_young_holds_alone(
    audited: None, make_user: Any, make_seats: Any, fund: Any, client_for: Any
) -> None:
    # given a booking made just now, whose payment has not been processed yet is irrelevant here
    user = make_user()
    (seat,) = make_seats(price=40_000)
    reservation_id = book(client_for(user), seat.id).json()["id"]

    # when the sweeper runs with an hour's hold
    expired = reservation_expire_holds(hold_seconds=3600)

    # then nothing young is expired (the saga settles on its own: no wallet, so payment-fail)
    assert expired == 0
    assert settled(reservation_id).reason == "wallet missing"
