"""Grid-level sums of the daily rollups, for the operator dashboard: energy per group of meters.

A group is whatever the caller maps each meter to (a feeder's pk, usually). The daily rollups do
not carry the feeder, since a meter can move, so the caller passes the current meter -> group map
and MongoDB applies it with $indexOfArray over a literal list: one lookup per daily document
(1,000 meters x 7 days = 7,000 lookups), before the hourly arrays are unwound. The result is a
few rows per group and hour, never the meters' raw readings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from mdms.core.timeseries import ROLLUPS_DAILY, collection


def _grouped(groups: Mapping[int, int], start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    meters = list(groups)
    return [
        {"$match": {"meter": {"$in": meters}, "start": {"$gte": start, "$lt": end}}},
        {
            "$set": {
                "group": {
                    "$arrayElemAt": [{"$literal": [groups[pk] for pk in meters]}, {"$indexOfArray": [meters, "$meter"]}]
                }
            }
        },
    ]


def group_hourly(groups: Mapping[int, int], start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Per group and hour (UTC start of the hour): import_kwh, export_kwh and how many meters reported.

    `start` and `end` are local midnights: whole daily rollups are read.
    """
    if not groups:
        return []
    pipeline: list[dict[str, Any]] = [
        *_grouped(groups, start, end),
        {"$project": {"group": 1, "meter": 1, "start": 1, "import_kwh": 1, "export_kwh": 1}},
        {"$unwind": {"path": "$import_kwh", "includeArrayIndex": "k"}},
        {
            "$group": {
                "_id": {
                    "group": "$group",
                    "hour": {"$dateAdd": {"startDate": "$start", "unit": "hour", "amount": "$k"}},
                },
                "import_kwh": {"$sum": "$import_kwh"},
                "export_kwh": {"$sum": {"$ifNull": [{"$arrayElemAt": ["$export_kwh", "$k"]}, 0]}},
                "meters": {"$sum": 1},
            }
        },
        {"$sort": {"_id.hour": 1}},
    ]
    return [
        {
            "group": row["_id"]["group"],
            "hour": row["_id"]["hour"].replace(tzinfo=dt.UTC),
            "import_kwh": float(row["import_kwh"]),
            "export_kwh": float(row["export_kwh"]),
            "meters": int(row["meters"]),
        }
        for row in collection(ROLLUPS_DAILY).aggregate(pipeline, allowDiskUse=True)
    ]


def group_daily(groups: Mapping[int, int], start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Per group and local day ("YYYY-MM-DD"): import and export kWh, and the highest meter demand."""
    if not groups:
        return []
    pipeline: list[dict[str, Any]] = [
        *_grouped(groups, start, end),
        {
            "$group": {
                "_id": {"group": "$group", "day": "$day"},
                "import_kwh": {"$sum": "$total_import_kwh"},
                "export_kwh": {"$sum": "$total_export_kwh"},
                "meters": {"$sum": 1},
            }
        },
        {"$sort": {"_id.day": 1}},
    ]
    return [
        {
            "group": row["_id"]["group"],
            "day": dt.date.fromisoformat(row["_id"]["day"]),
            "import_kwh": float(row["import_kwh"]),
            "export_kwh": float(row["export_kwh"]),
            "meters": int(row["meters"]),
        }
        for row in collection(ROLLUPS_DAILY).aggregate(pipeline, allowDiskUse=True)
    ]
