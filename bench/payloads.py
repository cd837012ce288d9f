"""``python -m bench.payloads``: what validating and encoding one event payload costs, per library.

The catalogue (ticketing/events) types every payload; publish() validates and encodes it, the consumer
validates and decodes it. This measures those two steps in-process for concert-reserve, declared three
ways: msgspec.Struct (what the catalogue uses: ``encode``/``decode`` of ticketing.events.schema),
pydantic (if installed: requirements-bench.txt) and a dataclass with a hand-written type check (a
dataclass checks nothing by itself). Best of ``--repeat`` runs of ``--number`` calls each; run it on a
quiet machine, the figures of a busy one are not results.
"""

from __future__ import annotations

import argparse
import dataclasses
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ticketing.events.catalogue import ConcertReserve  # plain declarations: no Django needed
from ticketing.events.schema import decode, encode

RAW = {"reservation_id": 12345, "user_id": 678, "amount": 140_000, "hold_until": "2026-12-03T10:00:00+00:00"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataclassReserve:
    reservation_id: int
    user_id: int
    amount: int
    hold_until: datetime | None = None


def dataclass_check(raw: dict[str, Any]) -> DataclassReserve:
    """The least a dataclass needs to refuse a wrong payload: each field's type, by hand."""
    for name in ("reservation_id", "user_id", "amount"):
        if type(raw[name]) is not int:
            raise TypeError(name)
    hold = raw.get("hold_until")
    return DataclassReserve(
        reservation_id=raw["reservation_id"],
        user_id=raw["user_id"],
        amount=raw["amount"],
        hold_until=datetime.fromisoformat(hold) if isinstance(hold, str) else None,
    )


def dataclass_encode(payload: DataclassReserve) -> dict[str, Any]:
    raw = dataclasses.asdict(payload)
    raw["hold_until"] = payload.hold_until.isoformat() if payload.hold_until else None
    dataclass_check(raw)
    return raw


def cases() -> dict[str, Callable[[], Any]]:
    typed = decode(ConcertReserve, RAW)
    as_dataclass = dataclass_check(RAW)
    found: dict[str, Callable[[], Any]] = {
        "msgspec   publish (validate + encode)": lambda: encode(typed),
        "msgspec   consume (validate + decode)": lambda: decode(ConcertReserve, RAW),
        "dataclass publish (hand check + asdict)": lambda: dataclass_encode(as_dataclass),
        "dataclass consume (hand check)": lambda: dataclass_check(RAW),
    }
    try:
        import pydantic
    except ImportError:
        return found

    class PydanticReserve(pydantic.BaseModel):
        # Not strict: a strict model refuses the JSON-ready datetime string (and, unlike msgspec, a lax one
        # takes "5" for 5: what it checks differs, so compare with care).
        model_config = pydantic.ConfigDict(frozen=True)
        reservation_id: int
        user_id: int
        amount: int
        hold_until: datetime | None = None

    model = PydanticReserve.model_validate({**RAW, "hold_until": datetime(2026, 12, 3, 10, tzinfo=UTC)})
    found["pydantic  publish (validate + encode)"] = lambda: PydanticReserve.model_validate(
        model.model_dump(mode="json")
    )
    found["pydantic  consume (validate + decode)"] = lambda: PydanticReserve.model_validate(RAW)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.payloads", description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the best is reported")
    args = parser.parse_args()
    for name, call in cases().items():
        best = min(timeit.repeat(call, number=args.number, repeat=args.repeat)) / args.number
        print(f"{name:42s} {best * 1e6:7.2f} µs")


if __name__ == "__main__":
    main()
