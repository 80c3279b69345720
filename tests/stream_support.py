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
        in_hour = [(pk, ts, kind) for pk, ts, kind in events if hour < ts <= hour + HOUR]
        if in_hour:
            stored_batches.publish(
                kind="events",
                meter_pks=[pk for pk, _ts, _kind in in_hour],
                min_ts=min(ts for _pk, ts, _kind in in_hour),
                max_ts=max(ts for _pk, ts, _kind in in_hour),
                count=len(in_hour),
            )
            entries += 1
        batch = [r for r in readings if hour < r["ts"] <= hour + HOUR]
        if batch:
            stored_batches.publish(
                kind="readings",
                meter_pks=[r["meter"] for r in batch],
                min_ts=min(r["ts"] for r in batch),
                max_ts=max(r["ts"] for r in batch),
                count=len(batch),
            )
            entries += 1
        hour += HOUR
    return entries
