"""The harness's verdict on a measurement: what makes a run FAILED (its figures count only if it passed)."""

from __future__ import annotations

import argparse
from typing import Any

from bench.common import percentiles
from bench.saga import failures


def measurement(**changes: Any) -> dict[str, Any]:
    clean = {
        "audit": {"passed": True},
        "unsettled": 0,
        "answered": 10,
        "sent": 10,
        "non_202": {},
        "settle_window_s": 5.0,
    }
    return clean | changes


def burst() -> argparse.Namespace:
    return argparse.Namespace(mode="burst", burst_settle=60.0)


def test_a_clean_burst_passes_with_refusals_that_name_the_problem() -> None:
    # given a burst whose bookings were all accepted or refused with 409/429
    result = measurement(non_202={"409": 3, "429": 1})

    # then it passes
    assert failures(burst(), result) == []


def test_a_burst_fails_on_a_5xx_or_a_timeout() -> None:
    result = measurement(non_202={"503": 1, "TimeoutError": 2})

    assert failures(burst(), result) == ["answers other than 202: {'503': 1, 'TimeoutError': 2}"]


def test_a_burst_fails_when_its_sagas_settle_later_than_the_bound() -> None:
    result = measurement(settle_window_s=71.4)

    assert failures(burst(), result) == ["settled in 71.4 s, more than 60.0 s"]


def test_a_saturation_run_fails_on_any_refusal_and_on_a_failed_audit() -> None:
    # fresh seats, one booking each: outside a burst even a 409 means something went wrong
    result = measurement(non_202={"409": 1}, audit={"passed": False})

    assert failures(argparse.Namespace(mode="closed"), result) == [
        "the audit failed",
        "answers other than 202: {'409': 1}",
    ]


def test_percentiles_interpolate_and_scale_seconds_to_milliseconds() -> None:
    assert percentiles([0.001, 0.002, 0.003, 0.004, 0.005]) == {
        "n": 5, "p50": 3.0, "p95": 4.8, "p99": 4.96, "max": 5.0,
    }  # fmt: skip
