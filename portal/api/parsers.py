"""The API's JSON parser: DRF's, with a bound on nesting.

Python's json decoder recurses once per level, so a body nested a few thousand levels deep raises
RecursionError (a 500) before any serializer sees it; and a body just under the interpreter's
limit would make any code that walks it recursively fail the same way. No request of this API
nests deeper than a handful of levels, so MAX_DEPTH is generous and cheap to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Nesting levels a request body may have: the deepest real body (a list of readings objects) has 3.
MAX_DEPTH = 32


def _too_deep(document: Any, limit: int) -> bool:
    """Whether any container in the document lies deeper than `limit` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels") from exc
        if _too_deep(document, MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        return document
