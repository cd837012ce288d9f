"""python manage.py load_demo: demo data, and the big hall for load tests, both idempotent."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from tests.conftest import all_databases
from ticketing.concerts.models import Performance, Seat

pytestmark = [all_databases]


def big_hall_seats() -> int:
    return Seat.objects.using("concerts").filter(performance__venue="Big Hall").count()


def test_big_hall_adds_one_performance_of_n_seats() -> None:
    # when the demo is loaded with a big hall of 2,500 seats
    call_command("load_demo", "--big-hall", "2500", stdout=StringIO())

    # then exactly one Big Hall performance exists, with 2,500 seats
    assert Performance.objects.using("concerts").filter(venue="Big Hall").count() == 1
    assert big_hall_seats() == 2500


def test_big_hall_again_changes_nothing_and_a_larger_one_adds_only_the_missing_seats() -> None:
    # given a big hall of 100 seats
    call_command("load_demo", "--big-hall", "100", stdout=StringIO())

    # when the same command runs again, then with 150
    call_command("load_demo", "--big-hall", "100", stdout=StringIO())
    assert big_hall_seats() == 100
    call_command("load_demo", "--big-hall", "150", stdout=StringIO())

    # then there is still one performance, now of 150 seats
    assert Performance.objects.using("concerts").filter(venue="Big Hall").count() == 1
    assert big_hall_seats() == 150


@override_settings(DEMO_SALES_OPEN_IN_SECONDS=120)
def test_the_demo_has_a_queued_performance_opening_after_each_load() -> None:
    # when the demo is loaded twice
    call_command("load_demo", stdout=StringIO())
    first = Performance.objects.using("concerts").get(queue=True)
    call_command("load_demo", stdout=StringIO())

    # then there is one queued performance, with seats, whose sales open 120 s after the latest load
    (performance,) = Performance.objects.using("concerts").filter(queue=True)
    assert performance.id == first.id
    assert performance.seats.using("concerts").count() > 0
    assert performance.sales_open_at is not None and first.sales_open_at is not None
    assert performance.sales_open_at >= first.sales_open_at
    assert abs((performance.sales_open_at - timezone.now()).total_seconds() - 120) < 10
