"""What consumer alerts read from MongoDB: a meter's power over a stretch of time, and when it was last heard.

Daily usage comes from the daily rollups (rollups.daily_documents) and projections from billing's
reads; only a meter's power over a stretch needs a query of its own (one meter over at most a day
or so of raw readings, through the (meter, ts) index). When a meter was last heard asks the
last-seen table and the readings' buckets (readings.newest_ts_by_meter), one query each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mdms.core.timeseries import READINGS, collection
from mdms.core.timeseries.anomalies import last_seen
from mdms.core.timeseries.readings import newest_ts_by_meter


@dataclass(frozen=True)
class PowerPoint:
    """The power of one interval: its end, its length, and the kW drawn over it."""

    ts: dt.datetime  # interval end, UTC
    interval_s: int
    kw: float


def power_series(meter_pk: int, start: dt.datetime, end: dt.datetime, *, default_interval_s: int) -> list[PowerPoint]:
    """One meter's power for readings with start < ts <= end, by ts, one per ts (the first received copy).

    The reading's own `power_w` when it has one; otherwise its import energy over its interval
    (a 15-minute 0.5 kWh is 2 kW). Readings with neither are left out.
    """
    pipeline: list[dict[str, Any]] = [
        {"$match": {"meter": meter_pk, "ts": {"$gt": start, "$lte": end}}},
        {"$sort": {"ts": 1, "received_at": 1, "_id": 1}},
        {
            "$group": {
                "_id": "$ts",
                "p": {"$first": "$power_w"},
                "i": {"$first": "$energy_import_kwh"},
                "iv": {"$first": "$interval_s"},
            }
        },
        {"$set": {"iv": {"$ifNull": ["$iv", default_interval_s]}}},
        {
            "$project": {
                "iv": 1,
                "kw": {
                    "$cond": [
                        {"$ne": [{"$ifNull": ["$p", None]}, None]},
                        {"$divide": ["$p", 1000]},
                        {
                            "$cond": [
                                {"$ne": [{"$ifNull": ["$i", None]}, None]},
                                {"$divide": [{"$multiply": ["$i", 3600]}, "$iv"]},
                                None,
                            ]
                        },
                    ]
                },
            }
        },
        {"$match": {"kw": {"$ne": None}}},
        {"$sort": {"_id": 1}},
    ]
    return [
        PowerPoint(ts=row["_id"], interval_s=int(row["iv"]), kw=float(row["kw"]))
        for row in collection(READINGS).aggregate(pipeline)
    ]


def last_heard(meter_pks: Iterable[int]) -> dict[int, dt.datetime]:
    """When each meter was last heard from: its newest reading, or a later power_on in the last-seen table.

    The last-seen table is kept by anomaly detection; the newest reading is asked as well so that
    a stalled detection never makes a reporting meter look silent. Meters never heard are absent.
    """
    pks = list(meter_pks)
    heard = dict(last_seen(pks))
    for pk, newest in newest_ts_by_meter(pks).items():
        if pk not in heard or newest > heard[pk]:
            heard[pk] = newest
    return heard
