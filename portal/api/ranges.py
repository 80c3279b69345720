"""Time ranges of readings and events queries, with their limits (a clear 400 beyond them).

The limits bound what one request can make the database do: raw intervals are read from the
time-series collection, hours and days from the daily rollups.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework import serializers

from mdms.core import reading_quality

MAX_SPAN = {
    "raw": dt.timedelta(days=31),
    "hour": dt.timedelta(days=366),
    "day": dt.timedelta(days=5 * 366),
}
MAX_EVENT_SPAN = dt.timedelta(days=366)
# Instants outside these are refused: PostgreSQL refuses UTC offsets beyond ±15:59 and dates
# near year 1 overflow when moved to another zone, and no meter read before 1970.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def to_utc(value: dt.datetime) -> dt.datetime:
    """An aware instant in UTC, or a ValueError when it is out of range."""
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError("out of range") from exc
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return utc


class UtcDateTimeField(serializers.DateTimeField):
    """An ISO 8601 instant with any offset, answered as UTC; out of range is a 400."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        parsed = super().to_internal_value(value)
        try:
            return to_utc(parsed)
        except ValueError as exc:
            raise serializers.ValidationError(f"Date and time {exc}.", code="out_of_range") from exc


DEFAULT_EVENT_SPAN = dt.timedelta(days=30)


class QualityFilterField(serializers.CharField):
    """A `quality` filter: a code or a family ("estimated"), several separated by commas; a 400 names a bad one."""

    def to_internal_value(self, data: Any) -> frozenset[str]:  # type: ignore[override]
        text = super().to_internal_value(data)
        try:
            return reading_quality.parse_filter(text)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)[0].upper() + str(exc)[1:] + ".", code="invalid_choice") from exc


QUALITY_HELP = (
    "Only intervals of these quality codes: a code (valid, edited, estimated_profile, ...) or "
    "'estimated' for every estimate; several separated by commas."
)


class ReadingsQuery(serializers.Serializer[Any]):
    resolution = serializers.ChoiceField(choices=list(MAX_SPAN), default="hour")
    start = UtcDateTimeField(help_text="Inclusive. Days: the local day containing it.")
    end = UtcDateTimeField(help_text="Exclusive.")
    quality = QualityFilterField(required=False, help_text=QUALITY_HELP + " Raw resolution only.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end, resolution = attrs["start"], attrs["end"], attrs["resolution"]
        if "quality" in attrs and resolution != "raw":
            raise serializers.ValidationError(
                {"quality": "Only raw intervals have a quality each: filter with resolution=raw."}, code="invalid"
            )
        if end <= start:
            raise serializers.ValidationError({"end": "end must come after start."}, code="range")
        limit = MAX_SPAN[resolution]
        if end - start > limit:
            raise serializers.ValidationError(
                {"end": f"At {resolution} resolution a query spans at most {limit.days} days."}, code="range_too_long"
            )
        return attrs


class SpanQuery(serializers.Serializer[Any]):
    start = UtcDateTimeField(required=False, help_text="Inclusive; default: 30 days before end.")
    end = UtcDateTimeField(required=False, help_text="Exclusive; default: now.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("end") or dt.datetime.now(tz=dt.UTC)
        start = attrs.get("start") or end - DEFAULT_EVENT_SPAN
        if end <= start:
            raise serializers.ValidationError({"end": "end must come after start."}, code="range")
        if end - start > MAX_EVENT_SPAN:
            raise serializers.ValidationError(
                {"end": f"A query spans at most {MAX_EVENT_SPAN.days} days."}, code="range_too_long"
            )
        return {"start": start, "end": end}
