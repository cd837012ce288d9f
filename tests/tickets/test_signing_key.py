"""Ticket codes are signed with TICKET_SIGNING_KEY, else with a key derived from SECRET_KEY (none in the repo)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from django.test import override_settings

from ticketing.concerts import ticket_codes
from ticketing.concerts.ticket_codes import BadTicketCode, ticket_code, ticket_code_verify

SEED = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")


@pytest.fixture(autouse=True)
def fresh_key() -> Iterator[None]:
    ticket_codes.signing_key.cache_clear()
    yield
    ticket_codes.signing_key.cache_clear()


def public_key_under(**settings: str) -> bytes:
    ticket_codes.signing_key.cache_clear()
    with override_settings(**settings):
        return ticket_codes.public_key_bytes()


def test_the_configured_key_signs_and_another_secret_key_does_not_change_it() -> None:
    assert public_key_under(TICKET_SIGNING_KEY=SEED, SECRET_KEY="a" * 50) == public_key_under(
        TICKET_SIGNING_KEY=SEED, SECRET_KEY="b" * 50
    )


def test_without_a_configured_key_each_secret_key_gives_its_own() -> None:
    first = public_key_under(TICKET_SIGNING_KEY="", SECRET_KEY="a" * 50)
    assert first != public_key_under(TICKET_SIGNING_KEY="", SECRET_KEY="b" * 50)


def test_a_code_signed_with_another_key_does_not_verify() -> None:
    # given a code signed by another installation
    with override_settings(TICKET_SIGNING_KEY=SEED):
        code = ticket_code(ticket_id=1, performance_id=2, label="A-1")
    ticket_codes.signing_key.cache_clear()

    # then this one refuses it, and accepts its own
    with override_settings(TICKET_SIGNING_KEY=""), pytest.raises(BadTicketCode):
        ticket_code_verify(code)
    own = ticket_code(ticket_id=1, performance_id=2, label="A-1")
    assert ticket_code_verify(own).ticket_id == 1
