"""docs/CONTRACT.md §4's events table, drawn from the catalogue.

``python -m ticketing.events.docs`` prints it; ``--write`` puts it into docs/CONTRACT.md between its
markers. tests/events/test_docs.py fails when the two differ.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import msgspec

from .catalogue import CATALOGUE
from .schema import Catalogue, Payload

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "CONTRACT.md"
BEGIN = (
    "<!-- events table: generated from ticketing/events/catalogue.py by `python -m ticketing.events.docs --write` -->"
)
END = "<!-- end of the events table -->"


def events_table(catalogue: Catalogue = CATALOGUE) -> str:
    rows = ["| event | from → to | meaning (payload) |", "| --- | --- | --- |"]
    for name, payload in catalogue.events.items():
        consumers = ", ".join(service.name for service in payload.consumers)
        rows.append(f"| `{name}` | {payload.publisher.name} → {consumers} | {meaning(payload)} ({fields(payload)}) |")
    return "\n".join(rows) + "\n"


def meaning(payload: type[Payload]) -> str:
    return " ".join((payload.__doc__ or "").split())


def fields(payload: type[Payload]) -> str:
    """Each field with its type; ``?`` marks one that may be absent (older messages lack it)."""
    annotations = {k: v for cls in reversed(payload.__mro__) for k, v in getattr(cls, "__annotations__", {}).items()}
    described = [
        f"{field.name}{'' if field.required else '?'}: {str(annotations[field.name]).replace(' | None', '')}"
        for field in msgspec.structs.fields(payload)
    ]
    return "`" + ", ".join(described) + "`"


def table_in(text: str) -> str:
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    if match is None:
        raise LookupError(f"{CONTRACT.name} has no events table markers")
    return match.group(1)


def written(text: str, table: str) -> str:
    table_in(text)  # the markers are there
    return re.sub(re.escape(BEGIN) + r"\n.*?" + re.escape(END), lambda _: f"{BEGIN}\n{table}{END}", text, flags=re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {CONTRACT}")
    args = parser.parse_args()
    if args.write:
        CONTRACT.write_text(written(CONTRACT.read_text(encoding="utf-8"), events_table()), encoding="utf-8")
    else:
        print(events_table(), end="")


if __name__ == "__main__":
    main()
