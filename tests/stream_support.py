"""Stored-batch stream entries for a stored backlog, published an hour at a time as the ingest would."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mdms.core import stored_batches

HOUR = dt.timedelta(hours=1)


def publish_hourly(
    readings: list[dict[str, Any]], events: list[tuple[int, dt.datetime, str]], start: dt.datetime, end: dt.datetime
) -> int:
    """For each hour in [start, end): one events entry and one readings entry, each only when the hour
    holds some. Returns the number of entries published."""
    entries = 0
    hour = start
    while hour < end:
        in_hour = [{"meter": pk, "ts": ts} for pk, ts, _kind in events if hour < ts <= hour + HOUR]
        batch = [r for r in readings if hour < r["ts"] <= hour + HOUR]
        for kind, documents in (("events", in_hour), ("readings", batch)):
            if documents:
                stored_batches.publish_stored(kind, documents)
                entries += 1
        hour += HOUR
    return entries
