"""python manage.py load_demo: demo data, and the big hall for load tests, both idempotent."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

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
