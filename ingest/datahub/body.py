"""A hub's answer, judged whole with the file importer's Enedis parser (ingest.parsing.parse_enedis).

A pull stores all of an answer or none of it: one unusable interval reading makes the whole answer
an error, located by its line and column in the body, so that the pull record points at it and the
day is pulled again rather than left with a hole nobody sees.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from ingest import parsing
from ingest.parsing import Rejection

# Which key of an interval reading a rejection is about, from the first word of its message
# (the derived energy and power come from the value).
_FIELD_OF = {
    "value": "value",
    "energy_import_kwh": "value",
    "power_w": "value",
    "date": "date",
    "interval_length": "interval_length",
}
_ARRAY_START = re.compile(r'"interval_reading"\s*:\s*\[')
_WHITESPACE = re.compile(r"\s*")


class BodyError(Exception):
    """The answer cannot be stored; message says why and where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Position:
    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


def _position(text: str, offset: int) -> Position:
    line = text.count("\n", 0, offset) + 1
    return Position(line=line, column=offset - text.rfind("\n", 0, offset))


def element_spans(text: str, count: int) -> list[tuple[int, int]] | None:
    """(start, end) offsets of the interval_reading elements in the body, or None if not found.

    json gives no positions for decoded values, so the array is walked again with raw_decode,
    element by element; an array whose element count differs from the parsed one is not it.
    """
    decoder = json.JSONDecoder()
    for match in _ARRAY_START.finditer(text):
        spans: list[tuple[int, int]] = []
        position = _WHITESPACE.match(text, match.end()).end()  # type: ignore[union-attr]
        try:
            while position < len(text) and text[position] != "]":
                _, end = decoder.raw_decode(text, position)
                spans.append((position, end))
                position = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
                if position < len(text) and text[position] == ",":
                    position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
        except ValueError:
            continue
        if len(spans) == count:
            return spans
    return None


def _where(text: str, spans: list[tuple[int, int]] | None, index: int, field: str | None) -> str:
    where = f"interval_reading[{index}]"
    if spans is None:
        return where
    start, end = spans[index]
    if field is not None:
        found = text.find(f'"{field}"', start, end)
        if found >= 0:
            start = found
    return f"{where} at {_position(text, start)}"


def _field(message: str) -> str | None:
    return _FIELD_OF.get(message.split(" ", 1)[0])


def load_curve(
    body: bytes, *, usage_point_id: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[parsing.Reading]:
    """Every reading of the answer, each with start < ts <= end (ts is an interval's end), or BodyError."""
    try:
        data = parsing.decode_json(body)
        found = parsing.enedis_usage_point(data)
    except Rejection as rejection:
        raise BodyError(f"malformed answer: {rejection.message}") from None
    if found != usage_point_id:
        raise BodyError(f"the answer is for usage point {found[:40]!r}, not this connector's {usage_point_id!r}")
    try:
        parsed = parsing.parse_enedis(data, serial=None, now=now)
    except Rejection as rejection:
        raise BodyError(f"malformed answer: {rejection.message}") from None
    elements: list[Any] = data.get("meter_reading", data)["interval_reading"]
    text = body.decode("utf-8")  # decode_json has read it as UTF-8 already
    if parsed.rejections:
        first_rejection, element = parsed.rejections[0]
        index = next(i for i, candidate in enumerate(elements) if candidate is element)
        where = _where(text, element_spans(text, len(elements)), index, _field(first_rejection.message))
        raise BodyError(
            f"malformed answer: {len(parsed.rejections)} of {len(elements)} interval readings are unusable, "
            f"the first is {where}: {first_rejection.message}"
        )
    if not parsed.readings:
        raise BodyError("the answer holds no interval reading for the range")
    for index, reading in enumerate(parsed.readings):
        if not start < reading.ts <= end:
            where = _where(text, element_spans(text, len(elements)), index, "date")
            raise BodyError(
                f"{where}: date {reading.ts.isoformat()} is outside the range asked for "
                f"({start.isoformat()} to {end.isoformat()})"
            )
    return parsed.readings
