"""The admin: every registered model's list opens, over the three databases, and a reservation shows its saga."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.contrib import admin
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from tests.conftest import all_databases, unique
from ticketing.accounts.services import user_register
from ticketing.concerts.models import Reservation
from ticketing.concerts.services import reservation_create
from ticketing.outbox.consume import consume
from ticketing.outbox.models import OutboxMessage
from ticketing.payments.handlers import consumer as payments_consumer

pytestmark = [all_databases]

REGISTERED: list[type[Model]] = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.fixture
def staff_client(make_user: Any) -> Client:
    user = make_user()
    user.is_staff = user.is_superuser = True
    user.save(using="default")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def rows_everywhere(make_seats: Any, fund: Any) -> Reservation:
    """At least one row of every service model, so each list renders real rows; returns a reservation."""
    user = user_register(username=unique("shopper"), password="correct-horse-battery-9")
    fund(user.id, 80_000)
    (seat,) = make_seats(price=50_000)
    reservation = reservation_create(user_id=user.id, seat_id=seat.id)
    # payments consumes the concert-reserve event as its worker would: a payment and payment-success
    request = OutboxMessage.objects.using("concerts").get(event="concert-reserve", aggregate_id=str(reservation.id))
    assert consume(request.envelope(), using="payments", handlers=payments_consumer.handlers)
    for alias in ("default", "concerts"):
        message = {"event_id": str(uuid.uuid4()), "event": "ping", "correlation_id": str(reservation.id), "payload": {}}
        consume(message, using=alias, handlers={"ping": lambda payload: None})
    return reservation


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_the_admin_list_of_every_registered_model_opens(
    staff_client: Client, rows_everywhere: Reservation, model: type[Model]
) -> None:
    # given a superuser and rows in every service database

    # when they open the model's list in the admin
    response = staff_client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))

    # then it opens
    assert response.status_code == 200


def test_the_admin_lists_rows_from_the_models_own_database(staff_client: Client, rows_everywhere: Reservation) -> None:
    # given a reservation in the concerts database

    # when the reservation list is opened
    response = staff_client.get(reverse("admin:concerts_reservation_changelist"))

    # then the reservation is listed
    assert [row.id for row in response.context["cl"].result_list] == [rows_everywhere.id]


def test_a_reservation_page_shows_its_saga_timeline(staff_client: Client, rows_everywhere: Reservation) -> None:
    # given a reservation whose saga wrote events in concerts and payments

    # when its admin page is opened
    response = staff_client.get(reverse("admin:concerts_reservation_change", args=[rows_everywhere.id]))

    # then the page opens and its timeline shows the events of both services
    assert response.status_code == 200
    page = response.content.decode()
    assert "concert-reserve" in page
    assert "payment-success" in page


def test_the_admin_is_closed_to_users_who_are_not_staff(make_user: Any) -> None:
    # given a logged-in user who is not staff
    client = Client()
    client.force_login(make_user())

    # when they open a list in the admin
    response = client.get(reverse("admin:concerts_reservation_changelist"))

    # then they are sent to the login page
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_reservation_of_several_seats_shows_every_seat(staff_client: Client, make_user: Any, make_seats: Any) -> None:
    # given a booking of two seats
    seats = make_seats(count=2)
    reservation = reservation_create(user_id=make_user().id, seat_ids=[s.id for s in seats])

    # when the reservation list and its page are opened
    listing = staff_client.get(reverse("admin:concerts_reservation_changelist")).content.decode()
    page = staff_client.get(reverse("admin:concerts_reservation_change", args=[reservation.id])).content.decode()

    # then both seats are named on each
    for seat in seats:
        assert f"{seat.label} (#{seat.id})" in listing
        assert f"{seat.label} (#{seat.id})" in page


def test_the_timeline_shows_the_trace_id_and_the_time_between_steps(
    staff_client: Client, rows_everywhere: Reservation
) -> None:
    # given a reservation whose booking row carries a trace
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    OutboxMessage.objects.using("concerts").filter(correlation_id=str(rows_everywhere.id)).update(
        traceparent=traceparent
    )

    # when its admin page is opened
    page = staff_client.get(reverse("admin:concerts_reservation_change", args=[rows_everywhere.id])).content.decode()

    # then it names the trace and the time from step to step
    assert "trace id: <code>0af7651916cd43dd8448eb211c80319c</code>" in page
    assert "start" in page
    assert re.search(r"\+\d+ ms", page)
