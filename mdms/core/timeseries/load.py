"""Hourly net load per group of meters (a feeder, usually), from the daily rollups: what forecasts read.

The hourly values live in `rollups_daily` (arrays of 23/24/25 hourly kWh per meter and local
day); a kWh in an hour is that hour's average power in kW. As in grid.py, the caller maps each
meter to its group (meters move, the rollups do not carry a feeder) and MongoDB applies the map,
sums import minus export per group and UTC hour, and returns a few rows per group and hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mdms.core.timeseries import ROLLUPS_DAILY, collection


@dataclass(frozen=True)
class GroupHour:
    group: int
    hour: dt.datetime  # UTC start of the hour
    net_kwh: float  # import - export of the group's meters in the hour
    meters: int  # meters with a daily rollup that day


def group_net_hourly(groups: Mapping[int, int], start: dt.datetime, end: dt.datetime) -> list[GroupHour]:
    """Per group and UTC hour, net energy (import - export) of the daily rollups that start in [start, end).

    `start` and `end` should be local midnights, so whole days are read. A rollup holds 0 for an
    hour without readings: the caller decides what a group's total of exactly 0 means.
    """
    if not groups:
        return []
    meters = list(groups)
    pipeline: list[dict[str, Any]] = [
        {"$match": {"meter": {"$in": meters}, "start": {"$gte": start, "$lt": end}}},
        {
            "$project": {
                "start": 1,
                "group": {
                    "$arrayElemAt": [{"$literal": [groups[pk] for pk in meters]}, {"$indexOfArray": [meters, "$meter"]}]
                },
                "net": {
                    "$map": {
                        "input": {"$range": [0, {"$size": "$import_kwh"}]},
                        "as": "k",
                        "in": {
                            "$subtract": [
                                {"$arrayElemAt": ["$import_kwh", "$$k"]},
                                {"$ifNull": [{"$arrayElemAt": ["$export_kwh", "$$k"]}, 0]},
                            ]
                        },
                    }
                },
            }
        },
        {"$unwind": {"path": "$net", "includeArrayIndex": "k"}},
        {
            "$group": {
                "_id": {"group": "$group", "hour": {"$add": ["$start", {"$multiply": ["$k", 3_600_000]}]}},
                "net": {"$sum": "$net"},
                "meters": {"$sum": 1},
            }
        },
    ]
    return [
        GroupHour(
            group=int(row["_id"]["group"]),
            hour=row["_id"]["hour"].replace(tzinfo=dt.UTC),
            net_kwh=float(row["net"]),
            meters=int(row["meters"]),
        )
        for row in collection(ROLLUPS_DAILY).aggregate(pipeline, allowDiskUse=True)
    ]
