"""POST /api/door/check-in/: the first scan admits, every later one is refused with the first time."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connections

from tests.conftest import all_databases, new_client, saga
from tests.saga.conftest import RowLock, in_thread, wait_for
from ticketing.concerts.models import CheckIn
from ticketing.concerts.services import reservation_cancel

from .conftest import check_in, code_of, tickets_of


@all_databases
def test_the_first_scan_admits_with_the_seat_and_the_holder(confirmed: Any, make_user: Any, door_staff: Any) -> None:
    # given a confirmed ticket of a user called by name
    holder = make_user()
    reservation = confirmed(user=holder)
    (ticket,) = tickets_of(reservation)

    # when door staff scan its code
    response = check_in(door_client(door_staff), code_of(ticket))

    # then it is admitted: the ticket, its seat, its holder and the time
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["ticket_id"], body["label"], body["holder"]) == (ticket.id, "A-1", holder.username)
    assert body["checked_in_at"]
    assert [t.status for t in tickets_of(reservation)] == ["CHECKED_IN"]


def door_client(user: Any) -> Any:
    client = new_client()
    client.force_login(user)
    return client


@all_databases
def test_a_second_scan_is_refused_with_the_first_time(confirmed: Any, door_staff: Any) -> None:
    # given a ticket checked in once
    (ticket,) = tickets_of(confirmed())
    client = door_client(door_staff)
    first = check_in(client, code_of(ticket)).json()

    # when it is scanned again
    response = check_in(client, code_of(ticket))

    # then 409 with the time of the first check-in; both scans are recorded, one admission
    assert response.status_code == 409
    assert response.json()["checked_in_at"] == first["checked_in_at"]
    outcomes = list(CheckIn.objects.using("concerts").filter(ticket=ticket).values_list("outcome", flat=True))
    assert sorted(outcomes) == ["ADMITTED", "ALREADY_CHECKED_IN"]


@all_databases
@pytest.mark.parametrize(
    "forge",
    [
        lambda code: code[:-3] + ("AAA" if not code.endswith("AAA") else "BBB"),  # another signature
        lambda code: code.replace("T1.", "T1.e30", 1),  # another payload under the same signature
        lambda code: "T1.not.base64!",
        lambda code: "hello",
        lambda code: "",
        lambda code: "T1." + "A" * 500,
    ],
    ids=["signature", "payload", "garbage", "no-code", "empty", "too-long"],
)
def test_a_forged_or_malformed_code_is_a_400_naming_the_code(confirmed: Any, door_staff: Any, forge: Any) -> None:
    (ticket,) = tickets_of(confirmed())
    response = check_in(door_client(door_staff), forge(code_of(ticket)))
    assert response.status_code == 400, response.content
    assert "code" in response.json()
    assert [t.status for t in tickets_of(ticket.reservation)] == ["VALID"]


@all_databases
def test_a_code_that_is_not_a_string_is_a_400(door_staff: Any) -> None:
    assert check_in(door_client(door_staff), 12345).status_code == 400


@all_databases
def test_a_ticket_of_a_cancelled_booking_is_gone(confirmed: Any, door_staff: Any) -> None:
    reservation = confirmed()
    (ticket,) = tickets_of(reservation)
    reservation_cancel(user_id=reservation.user_id, reservation_id=reservation.id)
    response = check_in(door_client(door_staff), code_of(ticket))
    assert response.status_code == 410
    assert "void" in response.json()["detail"]


@all_databases
def test_a_booking_whose_ticket_was_used_can_no_longer_be_cancelled(
    confirmed: Any, door_staff: Any, client_for: Any
) -> None:
    # given a booking whose ticket let someone in
    reservation = confirmed()
    (ticket,) = tickets_of(reservation)
    assert check_in(door_client(door_staff), code_of(ticket)).status_code == 200

    # when its owner tries to cancel it (for a refund)
    from ticketing.accounts.models import User

    response = client_for(User.objects.get(pk=reservation.user_id)).post(f"/api/reservations/{reservation.id}/cancel/")

    # then it is refused, and the ticket stays checked in
    assert response.status_code == 409
    assert "door" in response.json()["detail"]
    assert [t.status for t in tickets_of(reservation)] == ["CHECKED_IN"]


@all_databases
def test_without_the_door_permission_a_check_in_is_forbidden(confirmed: Any, make_user: Any, client_for: Any) -> None:
    (ticket,) = tickets_of(confirmed())
    assert check_in(door_client(make_user()), code_of(ticket)).status_code == 403
    assert check_in(client_for(make_user()), code_of(ticket)).status_code == 403
    assert check_in(new_client(), code_of(ticket)).status_code in (401, 403)
    assert [t.status for t in tickets_of(ticket.reservation)] == ["VALID"]


@all_databases
def test_a_superuser_may_check_in(confirmed: Any, make_user: Any) -> None:
    admin = make_user()
    admin.is_superuser = True
    admin.save(using="default")
    (ticket,) = tickets_of(confirmed())
    assert check_in(door_client(admin), code_of(ticket)).status_code == 200


@all_databases
def test_a_door_device_with_a_token_from_login_may_check_in(confirmed: Any, door_staff: Any) -> None:
    # given a door device that logged in with a door user's credentials
    from tests.conftest import PASSWORD

    device = new_client()
    login = device.post("/api/auth/login/", {"username": door_staff.username, "password": PASSWORD}, format="json")
    device.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['access']}")
    (ticket,) = tickets_of(confirmed())

    # then its token carries the door permission
    assert check_in(device, code_of(ticket)).status_code == 200


@saga
def test_two_devices_scanning_the_same_ticket_at_once_check_it_in_once(confirmed: Any, door_staff: Any) -> None:
    # given a ticket, and its row locked for a moment so that two scans arrive while it is busy
    (ticket,) = tickets_of(confirmed())
    code = code_of(ticket)
    lock = RowLock("concerts", f"SELECT 1 FROM concerts_ticket WHERE id = {ticket.id} FOR UPDATE")
    answers: list[Any] = []

    def scan() -> None:
        answers.append(check_in(door_client(door_staff), code))

    # when two devices scan it at the same moment
    devices = [threading.Thread(target=in_thread(scan)) for _ in range(2)]
    for device in devices:
        device.start()
    wait_for(lambda: lock_waiters("concerts") >= 2, what="both scans to wait on the ticket's row")
    lock.release()
    for device in devices:
        device.join(20)

    # then one admits it and the other is refused with the first one's time; one admission recorded
    assert sorted(answer.status_code for answer in answers) == [200, 409]
    admitted = next(a.json() for a in answers if a.status_code == 200)
    refused = next(a.json() for a in answers if a.status_code == 409)
    assert refused["checked_in_at"] == admitted["checked_in_at"]
    assert CheckIn.objects.using("concerts").filter(ticket=ticket, outcome="ADMITTED").count() == 1


def lock_waiters(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return int(cursor.fetchone()[0])
