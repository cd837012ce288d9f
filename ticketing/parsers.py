"""The API's request parser (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``), apart from ``ticketing.api``
because DRF imports it while its views module loads."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers

MAX_JSON_DEPTH = 32  # no body of the API nests deeper than a few levels


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a 400 for a body nested too deeply.

    Python's parser recurses once per level: about a thousand ``[`` raise ``RecursionError``, which
    DRF does not catch (a 500), and a few hundred parse but then sink validation and hashing deeper down.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.") from exc
        if json_depth(data) > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


def json_depth(data: Any) -> int:
    """How many arrays and objects deep ``data`` goes (walked without recursion)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest
