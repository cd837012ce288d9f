"""schemathesis against the running embedded default: generated requests, valid and not, from the
OpenAPI schema, sent concurrently. No answer is a 500, each matches the schema, no process dies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import access_token, saga

from .conftest import EmbeddedStack

pytestmark = [saga]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_generated_requests_get_documented_answers_and_no_process_dies(
    audited: None, healthy: EmbeddedStack, make_user: Any, make_seats: Any, fund: Any, tmp_path: Path
) -> None:
    # given a funded user and seats to book
    user = make_user()
    fund(user.id, 100_000_000)
    make_seats(count=20, price=10_000)

    # when schemathesis sends what the schema allows (and what it does not) from 8 workers, 10 examples
    # per operation (its coverage and stateful phases take minutes; `make run` gets them by hand)
    token = access_token(user)
    argv = [str(SCHEMATHESIS), "run", f"{healthy.url}/api/schema/", "--workers", "8", "--max-time", "120"]
    argv += ["--phases", "fuzzing", "--max-examples", "10"]
    argv += ["-H", f"Authorization: Bearer {token}", "--seed", "1", "--no-color"]
    # A schema-valid request may still be refused: a reused Idempotency-Key (422), a common password.
    argv += ["--exclude-checks", "positive_data_acceptance"]
    run = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        check=False,
    )

    # then every operation was tried and every check passed: no server error, documented status codes,
    # content types and bodies
    assert run.returncode == 0, run.stdout[-6000:]
    selected = re.search(r"Selected: (\d+)/\d+", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested and tested.group(1) == selected.group(1), run.stdout[-3000:]
