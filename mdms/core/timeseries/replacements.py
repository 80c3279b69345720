"""Estimates that a measured reading has replaced: found where the stored readings meet the estimates.

Every read already prefers a measured reading to an estimate (rollups.py: edit > measured > estimate),
so an actual that arrives late replaces the estimate in the rollups the moment they are recomputed.
What this module adds is the question billing asks afterwards: which estimates of these meters, in
this time range, now have a measured reading, and what did each say. The estimates are left as they
are (the nightly VEE drops the pointless ones); who saw a replacement is kept in Postgres.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from mdms.core.timeseries import ESTIMATES, READINGS, READINGS_METER_TS_INDEX, collection

# Estimates asked for in one readings lookup: each becomes one (meter, ts) clause of an $or.
LOOKUP_CHUNK = 1_000


def estimates_with_actuals(meter_pks: Sequence[int], start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """The estimates of these meters with start < ts <= end that a measured reading now stands beside.

    Each is {meter, ts, estimate_import_kwh, estimate_export_kwh, method, actual_import_kwh,
    actual_export_kwh, actual_received_at}, the actual being the first received copy (the one every
    read uses), by (meter, ts). One indexed find on the estimates, which are few, and a readings
    lookup only for the estimates found: the live stream, whose ranges hold no estimate, costs one
    index probe per meter.
    """
    if not meter_pks:
        return []
    estimates = list(
        collection(ESTIMATES).find(
            {"meter": {"$in": sorted(set(meter_pks))}, "ts": {"$gt": start, "$lte": end}}, {"_id": 0}
        )
    )
    found: list[dict[str, Any]] = []
    for offset in range(0, len(estimates), LOOKUP_CHUNK):
        chunk = estimates[offset : offset + LOOKUP_CHUNK]
        by_meter: dict[int, list[dt.datetime]] = {}
        for estimate in chunk:
            by_meter.setdefault(estimate["meter"], []).append(estimate["ts"])
        pipeline: list[dict[str, Any]] = [
            {"$match": {"$or": [{"meter": pk, "ts": {"$in": times}} for pk, times in by_meter.items()]}},
            {"$sort": {"meter": 1, "ts": 1, "received_at": 1, "_id": 1}},
            {"$group": {"_id": {"meter": "$meter", "ts": "$ts"}, "doc": {"$first": "$$ROOT"}}},
        ]
        actuals = {
            (row["_id"]["meter"], row["_id"]["ts"]): row["doc"]
            for row in collection(READINGS).aggregate(pipeline, hint=READINGS_METER_TS_INDEX)
        }
        for estimate in chunk:
            actual = actuals.get((estimate["meter"], estimate["ts"]))
            if actual is None:
                continue
            found.append(
                {
                    "meter": estimate["meter"],
                    "ts": estimate["ts"],
                    "estimate_import_kwh": estimate.get("energy_import_kwh"),
                    "estimate_export_kwh": estimate.get("energy_export_kwh"),
                    "method": estimate.get("method", ""),
                    "actual_import_kwh": actual.get("energy_import_kwh"),
                    "actual_export_kwh": actual.get("energy_export_kwh"),
                    "actual_received_at": actual.get("received_at"),
                }
            )
    found.sort(key=lambda row: (row["meter"], row["ts"]))
    return found
