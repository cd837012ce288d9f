"""The docs are drawn from the catalogue: CONTRACT.md's events table is generated, the READMEs and
the architecture link to it instead of copying it, and the reason vocabulary is the catalogue's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ticketing.events.catalogue import CATALOGUE, Reason
from ticketing.events.docs import CONTRACT, events_table, table_in

ROOT = Path(__file__).resolve().parents[2]


def test_the_events_table_of_the_contract_is_the_one_drawn_from_the_catalogue() -> None:
    # when the table is drawn from the catalogue, then docs/CONTRACT.md holds exactly it
    # (after a change to the catalogue: python -m ticketing.events.docs --write)
    assert table_in(CONTRACT.read_text(encoding="utf-8")) == events_table()


def test_the_drawn_table_names_every_event_its_services_and_fields() -> None:
    table = events_table()

    for name, payload in CATALOGUE.events.items():
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{name}` |")]
        assert f"| {payload.publisher.name} → " in row
        assert all(field in row for field in payload.__struct_fields__)


@pytest.mark.parametrize(
    "doc", ["README.md", "README.ko.md", "docs/GUIDE.md", "docs/GUIDE.ko.md", "docs/ARCHITECTURE.md"]
)
def test_the_other_docs_link_to_the_table_instead_of_copying_it(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")

    copied = [name for name in CATALOGUE.events if re.search(rf"^\| `{re.escape(name)}` \| \w+ → ", text, re.M)]
    assert copied == []
    assert "CONTRACT.md#4-events)" in text


def test_the_contracts_reason_vocabulary_is_the_catalogues() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    bullet = re.search(r"- Reservation `reason`:(.*?)\n- ", text, re.S)
    assert bullet is not None

    assert set(re.findall(r"`([a-z ]+)`", bullet.group(1))) == Reason.ALL


def test_the_contracts_seat_released_reasons_are_the_catalogues() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    line = re.search(r"- `seat-released`'s `reason`:(.*?)\n- ", text, re.S)
    assert line is not None

    named = set(re.findall(r"`([a-z ]+)`", line.group(1)))
    assert named | Reason.ALL == Reason.SEAT_RELEASES
