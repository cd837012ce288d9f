"""The ticket page (a shop page) and the door page, without a browser."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tests.conftest import all_databases

from .conftest import code_of, tickets_of

pytestmark = [all_databases]


def page_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def owner_of(reservation: Any) -> Any:
    from ticketing.accounts.models import User

    return User.objects.get(pk=reservation.user_id)


def test_the_ticket_page_shows_each_ticket_with_its_qr_code(confirmed: Any) -> None:
    reservation = confirmed(seats=2)
    response = page_client(owner_of(reservation)).get(f"/bookings/{reservation.id}/tickets/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<article class="ticket card"') == 2
    assert html.count("<svg") == 2
    for ticket in tickets_of(reservation):
        assert f'data-code="{code_of(ticket)}"' in html
    assert "입장권" in html and "Admission ticket" in html


def test_someone_elses_ticket_page_is_not_found(confirmed: Any, make_user: Any) -> None:
    reservation = confirmed()
    assert page_client(make_user()).get(f"/bookings/{reservation.id}/tickets/").status_code == 404


def test_the_ticket_page_asks_for_a_login(confirmed: Any) -> None:
    response = Client().get(f"/bookings/{confirmed().id}/tickets/")
    assert response.status_code == 302
    assert "/login/" in response.headers["Location"]


def test_the_door_page_is_for_door_staff_only(door_staff: Any, make_user: Any) -> None:
    assert page_client(door_staff).get("/door/").status_code == 200
    assert page_client(make_user()).get("/door/").status_code == 403
    assert Client().get("/door/").status_code == 302
