"""The router keeps each service in its own database: models, migrations and relations."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.db import connections, router
from django.db.models import Model

from tests.conftest import all_databases
from ticketing.accounts.models import User
from ticketing.concerts.models import Concert, Performance, Reservation, Seat
from ticketing.db_routers import SHARED_APPS, ServiceRouter, database_for_app
from ticketing.outbox.models import InboxMessage, OutboxMessage, Redelivery
from ticketing.payments.models import Payment, Wallet, WalletEntry

ALIASES = ("default", "concerts", "payments")
HOMES: list[tuple[type[Model], str]] = [
    (User, "default"),
    (Concert, "concerts"),
    (Performance, "concerts"),
    (Seat, "concerts"),
    (Reservation, "concerts"),
    (Wallet, "payments"),
    (WalletEntry, "payments"),
    (Payment, "payments"),
]
CONCRETE_MODELS = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]
SHARED_MODELS = [m for m in CONCRETE_MODELS if m._meta.app_label in SHARED_APPS]
home_of_each_model = pytest.mark.parametrize(("model", "alias"), HOMES, ids=[m._meta.label for m, _ in HOMES])


@home_of_each_model
def test_each_model_is_read_from_its_service_database(model: type[Model], alias: str) -> None:
    # when Django asks where to read the model from
    # then the router names the model's service database
    assert ServiceRouter().db_for_read(model) == alias
    assert router.db_for_read(model) == alias
    assert model._default_manager.all().db == alias


@home_of_each_model
def test_each_model_is_written_to_its_service_database(model: type[Model], alias: str) -> None:
    # when Django asks where to write the model
    # then the router names the model's service database
    assert ServiceRouter().db_for_write(model) == alias
    assert router.db_for_write(model) == alias


@pytest.mark.parametrize("alias", ALIASES)
def test_an_outbox_row_is_written_to_the_database_it_was_loaded_from(alias: str) -> None:
    # given an outbox row that lives in one service database
    message = OutboxMessage(event="x", aggregate_id="1", correlation_id="1", payload={})
    message._state.db = alias

    # when Django asks where to write it
    # then it stays in that database
    assert ServiceRouter().db_for_write(OutboxMessage, instance=message) == alias
    assert router.db_for_write(OutboxMessage, instance=message) == alias


@pytest.mark.parametrize(
    ("model", "alias"),
    [*HOMES, (OutboxMessage, "concerts"), (InboxMessage, "payments")],
    ids=[m._meta.label for m, _ in HOMES] + ["outbox.OutboxMessage", "outbox.InboxMessage"],
)
def test_allow_migrate_agrees_with_the_home_of_each_model(model: type[Model], alias: str) -> None:
    # when the router is asked where each model may be migrated
    allowed = {db for db in ALIASES if router.allow_migrate_model(db, model)}

    # then domain models go to their home only, the outbox and inbox everywhere
    expected = set(ALIASES) if model._meta.app_label == "outbox" else {alias}
    assert allowed == expected


@pytest.mark.django_db(databases="__all__")
@home_of_each_model
def test_a_service_table_exists_only_in_its_service_database(model: type[Model], alias: str) -> None:
    # given the migrated test databases
    # when each database's tables are listed
    present = {db for db in ALIASES if model._meta.db_table in connections[db].introspection.table_names()}

    # then the model's table is in its service database and nowhere else
    assert present == {alias}


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("model", SHARED_MODELS, ids=lambda m: m._meta.label)
def test_the_shared_tables_exist_in_every_service_database(model: type[Model]) -> None:
    # when each database's tables are listed
    present = {db for db in ALIASES if model._meta.db_table in connections[db].introspection.table_names()}

    # then every service database has the table (outbox, inbox and the like)
    assert present == set(ALIASES)


def test_the_outbox_and_inbox_are_shared_by_every_service() -> None:
    # then the outbox, inbox and redelivery models are among those every service database holds
    assert {OutboxMessage, InboxMessage, Redelivery} <= set(SHARED_MODELS)


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("model", CONCRETE_MODELS, ids=lambda m: m._meta.label)
def test_every_table_exists_exactly_where_the_router_sends_its_model(model: type[Model]) -> None:
    # when each database's tables are listed
    present = {db for db in ALIASES if model._meta.db_table in connections[db].introspection.table_names()}

    # then the table is in its service's database only, or in all of them for a shared app
    expected = set(ALIASES) if model in SHARED_MODELS else {database_for_app(model._meta.app_label)}
    assert present == expected


@pytest.mark.django_db(databases="__all__")
def test_django_own_tables_exist_only_in_the_accounts_database() -> None:
    # when each database's tables are listed
    present = {db for db in ALIASES if "django_session" in connections[db].introspection.table_names()}

    # then sessions (like auth, admin and the beat schedule) live in accounts only
    assert present == {"default"}


class TestCrossDatabaseRelations:
    pytestmark = [all_databases]

    def test_the_router_refuses_a_relation_between_rows_of_different_databases(self, make_seats: Any) -> None:
        # given a seat loaded from concerts and a row that lives in payments
        (seat,) = make_seats()
        seat = Seat.objects.using("concerts").get(pk=seat.pk)
        elsewhere = Reservation(user_id=1, amount=seat.price)
        elsewhere._state.db = "payments"

        # when the router is asked about relating them
        # then it refuses
        assert ServiceRouter().allow_relation(seat, elsewhere) is False
        assert router.allow_relation(seat, elsewhere) is False

    def test_django_refuses_to_assign_a_row_of_another_database(self, make_seats: Any) -> None:
        # given a seat loaded from concerts and a row that lives in payments
        (seat,) = make_seats()
        seat = Seat.objects.using("concerts").get(pk=seat.pk)
        elsewhere = Reservation(user_id=1, amount=seat.price)
        elsewhere._state.db = "payments"

        # when the seat is assigned to it
        # then Django refuses, on the router's word
        with pytest.raises(ValueError, match="router prevents this relation"):
            elsewhere.seat = seat

    def test_rows_of_the_same_database_may_relate(self, make_seats: Any) -> None:
        # given a seat and a reservation, both in concerts
        (seat,) = make_seats()
        seat = Seat.objects.using("concerts").get(pk=seat.pk)
        reservation = Reservation(user_id=1, amount=seat.price)
        reservation._state.db = "concerts"

        # when the seat is assigned to the reservation
        reservation.seat = seat

        # then the relation holds
        assert ServiceRouter().allow_relation(seat, reservation) is True
        assert reservation.seat_id == seat.pk
