"""Outside `make run` and the tests, the project refuses to start without a real SECRET_KEY.

Each case starts a fresh interpreter that loads the WSGI application, as gunicorn does in the image.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789"
REAL_KEY = "a-real-secret-key-of-more-than-thirty-two-characters"
LOAD_APP = "import ticketing.wsgi; from django.conf import settings; print('DEBUG', settings.DEBUG)"


def start(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the application with none of SECRET_KEY, DEBUG, TICKETING_DEV set unless given here."""
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "TICKETING_DEV"}}
    return subprocess.run(
        [sys.executable, "-c", LOAD_APP],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"DEBUG": "0"},
        {"DEBUG": "0", "TICKETING_DEV": "1"},
        {"SECRET_KEY": DEVELOPMENT_KEY},
        {"SECRET_KEY": "short"},
    ],
    ids=["nothing-set", "debug-off", "dev-but-debug-off", "the-public-key", "a-short-key"],
)
def test_without_a_real_secret_key_the_application_refuses_to_start(env: dict[str, str]) -> None:
    # when the application is started without a real key, as in the image or by hand
    result = start(**env)

    # then it refuses, naming SECRET_KEY
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_with_a_real_key_and_nothing_else_debug_is_off() -> None:
    result = start(SECRET_KEY=REAL_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DEBUG", "False"]


def test_the_development_mode_of_make_run_starts_with_debug_on() -> None:
    result = start(TICKETING_DEV="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DEBUG", "True"]


def test_a_bad_throttle_rate_is_a_start_up_error_naming_it() -> None:
    result = start(TICKETING_DEV="1", BOOKING_RATE_PER_USER="lots")
    assert result.returncode != 0
    assert "BOOKING_RATE_PER_USER" in result.stderr


def test_a_malformed_ticket_signing_key_is_a_start_up_error_naming_it() -> None:
    result = start(SECRET_KEY=REAL_KEY, TICKET_SIGNING_KEY="not-a-key")
    assert result.returncode != 0
    assert "TICKET_SIGNING_KEY" in result.stderr


def test_make_run_and_the_tests_ask_for_the_development_mode_and_nothing_else_does() -> None:
    # given the files that start the project
    makefile = (ROOT / "Makefile").read_text()
    others = {name: (ROOT / name).read_text() for name in ("Dockerfile", "docker-compose.yml", "Procfile")}

    # then only the Makefile (make run, the tests) sets TICKETING_DEV; the image bakes in no key
    dev_targets = [line.split(":")[0].split() for line in makefile.splitlines() if "export TICKETING_DEV" in line]
    assert dev_targets == [["migrate", "demo", "run", "serve", "check-types", "messages"]]
    assert "TEST_ENV := TICKETING_DEV=1" in makefile
    assert [name for name, text in others.items() if "TICKETING_DEV" in text] == []
    assert not [line for line in others["Dockerfile"].splitlines() if line.startswith("ENV") and "SECRET" in line]
