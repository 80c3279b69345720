"""Rollups, estimates and edits in MongoDB: the effective value of every interval, and its daily rollup.

The effective value of an interval (meter, ts) is, in this order: the newest edit by billing staff
(`interval_edits`), else the first received measured reading (`readings`, deduped by (meter, ts)),
else a VEE estimate (`estimates`). Estimates and edits live in collections of their own so the raw
readings are never changed, and every read says where a value came from.

An interval belongs to the period containing its start: `ts` is the interval's end, so a 15-minute
interval ending at 00:00 local time belongs to the day before. Periods are local (the utility's
TIME_ZONE), so a day has 23, 24 or 25 hours: Python works out the range's local midnights and DST
changes once (_Calendar), and MongoDB applies them to every row with integer arithmetic.

`rollups_daily` holds one document per meter and local day (`_id` "<meter>:<YYYY-MM-DD>"):

    meter, day ("YYYY-MM-DD"), start (UTC instant of local midnight), hours (23/24/25),
    import_kwh / export_kwh / estimated_import_kwh: arrays of `hours` values, hour k starting at
        start + k hours,
    total_import_kwh, total_export_kwh, total_estimated_import_kwh,
    intervals (with a value), estimated_intervals, edited_intervals, expected_intervals,
    quality_intervals ({code: intervals} for every code of mdms.core.reading_quality; absent from
        rollups computed before the codes existed: reading_quality.counts_from_legacy stands in),
    missing_intervals (expected minus intervals), interval_s,
    max_demand_kw (highest 15-minute average), max_demand_at (UTC end of that 15 minutes),
    computed_at.

A day is recomputed from the raw readings as a whole (never incremented), with one aggregation
for a set of meters and a range of days that writes its result with $merge: running it twice, or
after a duplicate arrives, changes nothing.
Energies are as the meter reports them, before the meter multiplier (billing applies it).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pymongo

from mdms.core import reading_quality as rq
from mdms.core.localtime import local_zone
from mdms.core.reading_fields import DEFAULT_INTERVAL_S
from mdms.core.timeseries import (
    ESTIMATES,
    INTERVAL_EDITS,
    INTERVAL_FLAGS,
    READINGS,
    READINGS_METER_TS_INDEX,
    ROLLUPS_DAILY,
    collection,
)

# Where an effective value came from; the order is the precedence.
SOURCE_EDIT = 0
SOURCE_MEASURED = 1
SOURCE_ESTIMATE = 2
SOURCE_NAMES = {SOURCE_EDIT: "edited", SOURCE_MEASURED: "measured", SOURCE_ESTIMATE: "estimated"}
# A VEE flag (interval_flags) is merged in with the values but never is one: it sorts after them,
# and a (meter, ts) with only a flag has no value and is dropped.
SOURCE_FLAG = 3

# Maximum demand is the highest average power over a clock-aligned 15 minutes.
DEMAND_WINDOW_MIN = 15
# Rollup energies and demand are rounded to this many decimals (a thousandth of a Wh).
KWH_DECIMALS = 6


def _union_sources(match: dict[str, Any], key: Any = None, *, detail: bool = False) -> list[dict[str, Any]]:
    """Readings, edits, estimates and VEE flags matching `match`, reduced to one effective document
    per (meter, ts) that has a value.

    Each result is {_id: key (default {meter, ts}), doc: {s: source, r: received_at, o: _id, i, e,
    iv, m: an estimate's method, q: a stored quality code, g: a reading's origin}, f: the strongest
    VEE flag (reading_quality.FLAG_*) or null}. With `detail`, doc also has x: an edit's audit id, and
    fl: {flag, rule, exception} of the strongest flag.
    """
    keep = {
        "meter": 1,
        "ts": 1,
        "received_at": 1,
        "energy_import_kwh": 1,
        "energy_export_kwh": 1,
        "interval_s": 1,
        "method": 1,
        "quality": 1,
        "origin": 1,
    }
    if detail:
        keep["edit_id"] = 1
    winner: dict[str, Any] = {
        "s": "$source",
        "r": "$received_at",
        "o": "$_id",
        "i": "$energy_import_kwh",
        "e": "$energy_export_kwh",
        "iv": "$interval_s",
        "m": "$method",  # an estimate's method; absent elsewhere
        "q": "$quality",  # a code the document carries (an estimate's, a data hub's estimated point)
        "g": "$origin",  # a reading's source; absent: MQTT
    }
    if detail:
        winner["x"] = "$edit_id"
    group: dict[str, Any] = {
        "_id": key or {"meter": "$meter", "ts": "$ts"},
        # The winner per (meter, ts) is the smallest (source, received_at, _id): edits first, then the
        # first received reading (the deduping rule of readings.py). $min compares documents field by
        # field in order, and costs a quarter of what $top with a sortBy costs over millions of rows.
        "doc": {"$min": winner},
        # The strongest flag ($max ignores the null of the other collections).
        "f": {"$max": "$flag"},
    }
    if detail:
        group["fl"] = {
            "$max": {
                "$cond": [
                    {"$eq": ["$source", SOURCE_FLAG]},
                    {"flag": "$flag", "rule": "$rule", "exception": "$exception"},
                    None,
                ]
            }
        }
    flag_keep = {"meter": 1, "ts": 1, "flag": 1, "rule": 1, "exception": 1}
    return [
        {"$match": match},
        {"$project": {**keep, "source": {"$literal": SOURCE_MEASURED}}},
        {
            "$unionWith": {
                "coll": INTERVAL_EDITS,
                "pipeline": [{"$match": match}, {"$project": {**keep, "source": {"$literal": SOURCE_EDIT}}}],
            }
        },
        {
            "$unionWith": {
                "coll": ESTIMATES,
                "pipeline": [{"$match": match}, {"$project": {**keep, "source": {"$literal": SOURCE_ESTIMATE}}}],
            }
        },
        {
            "$unionWith": {
                "coll": INTERVAL_FLAGS,
                "pipeline": [{"$match": match}, {"$project": {**flag_keep, "source": {"$literal": SOURCE_FLAG}}}],
            }
        },
        {"$group": group},
        {"$match": {"doc.s": {"$lt": SOURCE_FLAG}}},
    ]


def _quality_index() -> dict[str, Any]:
    """The expression of an effective document's quality, as its index in reading_quality.QUALITIES.

    Mirrors reading_quality.reading_quality and estimate_quality: an edit is edited; a document that
    carries a code keeps it; an estimate stored before estimates carried one is judged by its method
    (linear..., register: interpolation; otherwise the profile); a reading by its strongest flag.
    """
    stored = {"$max": [0, {"$indexOfArray": [{"$literal": list(rq.CODES)}, "$doc.q"]}]}
    has_stored = {"$eq": [{"$type": "$doc.q"}, "string"]}
    by_method = {
        "$switch": {
            "branches": [
                {
                    "case": {"$regexMatch": {"input": {"$ifNull": ["$doc.m", ""]}, "regex": "^(linear|register$)"}},
                    "then": rq.INDEX[rq.ESTIMATED_INTERPOLATION.code],
                },
                {
                    "case": {"$regexMatch": {"input": {"$ifNull": ["$doc.m", ""]}, "regex": "^reference_day"}},
                    "then": rq.INDEX[rq.ESTIMATED_REFERENCE_DAY.code],
                },
            ],
            "default": rq.INDEX[rq.ESTIMATED_PROFILE.code],
        }
    }
    by_flag = {
        "$switch": {
            "branches": [
                {"case": {"$eq": ["$f", rq.FLAG_QUESTIONABLE]}, "then": rq.INDEX[rq.QUESTIONABLE.code]},
                {"case": {"$eq": ["$f", rq.FLAG_VALIDATED]}, "then": rq.INDEX[rq.VALIDATED.code]},
            ],
            "default": rq.INDEX[rq.VALID.code],
        }
    }
    return {
        "$switch": {
            "branches": [
                {"case": {"$eq": ["$doc.s", SOURCE_EDIT]}, "then": rq.INDEX[rq.EDITED.code]},
                {"case": has_stored, "then": stored},
                {"case": {"$eq": ["$doc.s", SOURCE_ESTIMATE]}, "then": by_method},
            ],
            "default": by_flag,
        }
    }


def _interval_match(meter_pks: Sequence[int], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    # Interval ends in (start, end]: the intervals that start in [start, end) for any interval
    # length up to a day, given start/end on period boundaries.
    return {"meter": {"$in": list(meter_pks)}, "ts": {"$gt": start, "$lte": end}}


def effective_intervals(
    meter_pk: int, start: dt.datetime, end: dt.datetime, *, detail: bool = False
) -> list[dict[str, Any]]:
    """One meter's effective intervals with start < ts <= end, by ts: {ts, import_kwh, export_kwh,
    source, method?, quality, origin?}.

    `source` is SOURCE_EDIT, SOURCE_MEASURED or SOURCE_ESTIMATE; `method` the estimate's method
    ("linear", "profile", ...) where source is SOURCE_ESTIMATE; `quality` the interval's code
    (mdms.core.reading_quality); `origin` a reading's stored source (absent: MQTT). With `detail`,
    also `edit_id` (an edit's audit row) and `flag` ({flag, rule, exception} of a VEE flag).
    """
    project: dict[str, Any] = {
        "_id": 0,
        "ts": "$_id.ts",
        "import_kwh": "$doc.i",
        "export_kwh": "$doc.e",
        "source": "$doc.s",
        "method": "$doc.m",
        "quality": {"$arrayElemAt": [{"$literal": list(rq.CODES)}, _quality_index()]},
        "origin": "$doc.g",
    }
    if detail:
        project.update({"edit_id": "$doc.x", "flag": "$fl"})
    pipeline = [
        *_union_sources(_interval_match([meter_pk], start, end), detail=detail),
        {"$sort": {"_id.ts": 1}},
        {"$project": project},
    ]
    # The hint pins the plan to the (meter, ts) index of the buckets. The planner's other candidate,
    # a clustered scan of the buckets by _id (time), reads every meter's buckets of the range: 506
    # buckets instead of 2 for one meter-day of 200 meters (explain, executionStats), and many
    # thousands while a backfill writes that range for every meter. With the hint the plan no longer
    # depends on what the plan cache picked under another load.
    return list(collection(READINGS).aggregate(pipeline, allowDiskUse=True, hint=READINGS_METER_TS_INDEX))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ms(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class _Calendar:
    """The local days of a range, worked out once in Python so that MongoDB needs no time zone per row.

    Calling $dateTrunc with a time zone on every reading cost more than the rest of the rollup
    together; here a row needs the zone's UTC offset (a literal, or a $switch over the few DST
    changes in the range) and integer arithmetic.
    """

    days: list[str]  # "YYYY-MM-DD" of each local day
    starts: list[int]  # UTC epoch ms of each local midnight, and of the one after the last day
    first_local_day: int  # days since the epoch, in local time, of the first day
    offsets: list[tuple[int, int]]  # (from UTC epoch ms, offset ms), by time; the first applies before too

    @classmethod
    def of(cls, start: dt.datetime, end: dt.datetime) -> _Calendar:
        zone = local_zone()
        first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
        midnights = [dt.datetime.combine(day, dt.time(), tzinfo=zone) for day in days]
        starts = [_ms(moment) for moment in midnights]

        def offset(ms: int) -> int:
            utc = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
            delta = utc.astimezone(zone).utcoffset()
            return int(delta.total_seconds() * 1000) if delta is not None else 0

        # One look a day finds the days with a change; bisection finds its instant to the millisecond.
        offsets = [(starts[0], offset(starts[0]))]
        for low, high in itertools.pairwise(starts):
            if offset(high) != offset(low):
                while high - low > 1:
                    middle = (low + high) // 2
                    low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
                offsets.append((high, offset(high)))
        first_local = (starts[0] + offsets[0][1]) // 86_400_000
        return cls([day.isoformat() for day in days[:-1]], starts, first_local, offsets)

    def offset_at(self, begin: Any) -> Any:
        """The expression of the zone's UTC offset (ms) at epoch ms `begin`."""
        if len(self.offsets) == 1:
            return self.offsets[0][1]
        branches = [{"case": {"$gte": [begin, since]}, "then": ms} for since, ms in reversed(self.offsets[1:])]
        return {"$switch": {"branches": branches, "default": self.offsets[0][1]}}

    def day_index(self, begin: Any) -> Any:
        """The expression of the index in `days` of the local day containing epoch ms `begin`."""
        local = {"$add": [begin, self.offset_at(begin)]}
        return {"$subtract": [{"$toLong": {"$floor": {"$divide": [local, 86_400_000]}}}, self.first_local_day]}


# Rows are grouped under one number, meter * _KEY_BASE + (epoch ms - range base): MongoDB groups
# by a number several times faster than by a {meter, ts} document, which matters at millions of rows.
_KEY_BASE = 10**11
# Keys stay exact in a 64-bit integer and in a double: meter pks under 90 million, ranges
# under 1,100 days (rollups are rebuilt a month at a time at most).
_MAX_METER_PK = 90_000_000
_MAX_SPAN = dt.timedelta(days=1_100)
_HOUR_MS = 3_600_000
# The three counts (intervals, estimated, edited) travel as one sum, a digit each in base 2**20
# (a day has at most 86,400 intervals): one accumulator instead of three on every row. The counts
# per quality code travel the same way, three digits to a sum (a 64-bit integer holds three).
_COUNT_UNIT = 2**20


def _digits(*flags: bool) -> int:
    return sum(_COUNT_UNIT**n for n, flag in enumerate(flags) if flag)


# By quality index (reading_quality.QUALITIES): c = (intervals, estimated, edited),
# c2 = (questionable, validated, interpolated), c3 = (profile, reference day, data hub). A legacy
# "estimated" is what is estimated without a method: always 0 from this pipeline.
_COUNTS = [_digits(True, q.estimated, q is rq.EDITED) for q in rq.QUALITIES]
_COUNTS2 = [_digits(q is rq.QUESTIONABLE, q is rq.VALIDATED, q is rq.ESTIMATED_INTERPOLATION) for q in rq.QUALITIES]
_COUNTS3 = [
    _digits(q is rq.ESTIMATED_PROFILE, q is rq.ESTIMATED_REFERENCE_DAY, q is rq.ESTIMATED_DATAHUB) for q in rq.QUALITIES
]
_ESTIMATED_BY_INDEX = [q.estimated for q in rq.QUALITIES]


def _digit(total: str, n: int) -> dict[str, Any]:
    """The expression of digit n of a packed count."""
    return {"$toInt": {"$mod": [{"$floor": {"$divide": [total, _COUNT_UNIT**n]}}, _COUNT_UNIT]}}


_BLOCK_MS = DEMAND_WINDOW_MIN * 60_000


def _rollup_pipeline(
    meter_pks: Sequence[int], start: dt.datetime, end: dt.datetime, interval_s: int, stamp: dt.datetime
) -> list[dict[str, Any]]:
    if max(meter_pks) >= _MAX_METER_PK or min(meter_pks) < 0 or end - start > _MAX_SPAN:
        raise ValueError("meter pks or the range are too large for the rollup keys")
    calendar = _Calendar.of(start, end)
    # Every instant in the rows is taken relative to a day before the range (an interval that starts
    # before the range and ends in it) so that it fits in _KEY_BASE.
    base = calendar.starts[0] - 86_400_000
    estimated = {"$arrayElemAt": [{"$literal": _ESTIMATED_BY_INDEX}, "$k"]}
    iv = {"$ifNull": ["$doc.iv", interval_s]}
    row_key = {"$add": [{"$multiply": ["$meter", _KEY_BASE]}, {"$subtract": [{"$toLong": "$ts"}, base]}]}

    def local_floor(key: str, unit_ms: int) -> dict[str, Any]:
        # The key of the local-clock `unit_ms` period containing the instant in key: local periods
        # of 15 minutes and of an hour start on UTC instants that depend on the zone's offset then.
        return {
            "$let": {
                "vars": {"t": {"$add": [{"$mod": [key, _KEY_BASE]}, base]}},
                "in": {
                    "$subtract": [
                        key,
                        {"$mod": [{"$add": ["$$t", calendar.offset_at("$$t")]}, unit_ms]},
                    ]
                },
            }
        }

    day_start = {"$arrayElemAt": [{"$literal": calendar.starts}, "$_id.x"]}
    hours = {
        "$divide": [
            {"$subtract": [{"$arrayElemAt": [{"$literal": calendar.starts}, {"$add": ["$_id.x", 1]}]}, day_start]},
            _HOUR_MS,
        ]
    }
    return [
        *_union_sources(_interval_match(meter_pks, start, end), key=row_key),
        # b: the key of the interval's start (its end minus its length).
        {
            "$project": {
                "_id": 0,
                "b": {"$subtract": ["$_id", {"$multiply": [iv, 1000]}]},
                "t": {"$mod": ["$_id", _KEY_BASE]},
                "k": _quality_index(),
                "i": "$doc.i",
                "e": "$doc.e",
                "iv": iv,
            }
        },
        # 15-minute blocks first: a block of 5-minute intervals is averaged over its 15 minutes,
        # a 30- or 60-minute interval over its own length.
        {
            "$group": {
                "_id": local_floor("$b", _BLOCK_MS),
                "i": {"$sum": "$i"},
                "e": {"$sum": "$e"},
                "est": {"$sum": {"$cond": [estimated, "$i", 0]}},
                "estx": {"$sum": {"$cond": [estimated, "$e", 0]}},
                "c": {"$sum": {"$arrayElemAt": [{"$literal": _COUNTS}, "$k"]}},
                "c2": {"$sum": {"$arrayElemAt": [{"$literal": _COUNTS2}, "$k"]}},
                "c3": {"$sum": {"$arrayElemAt": [{"$literal": _COUNTS3}, "$k"]}},
                "block_s": {"$sum": "$iv"},
                "last": {"$max": "$t"},
                "iv": {"$max": "$iv"},
            }
        },
        # Then local hours; the peak is the highest kW, the earliest on a tie: the largest (kw, -end).
        {
            "$group": {
                "_id": local_floor("$_id", _HOUR_MS),
                "i": {"$sum": "$i"},
                "e": {"$sum": "$e"},
                "est": {"$sum": "$est"},
                "estx": {"$sum": "$estx"},
                "c": {"$sum": "$c"},
                "c2": {"$sum": "$c2"},
                "c3": {"$sum": "$c3"},
                "iv": {"$max": "$iv"},
                "peak": {
                    "$max": {
                        "kw": {
                            "$round": [
                                {
                                    "$divide": [
                                        "$i",
                                        {"$max": [DEMAND_WINDOW_MIN / 60, {"$divide": ["$block_s", 3600]}]},
                                    ]
                                },
                                KWH_DECIMALS,
                            ]
                        },
                        "neg_at": {"$subtract": [0, "$last"]},
                    }
                },
            }
        },
        # The hour's local day (x, an index into the calendar); an hour before the range holds an
        # interval not aligned on midnight that started the day before, which this run leaves alone.
        {"$set": {"t": {"$add": [{"$mod": ["$_id", _KEY_BASE]}, base]}}},
        {"$set": {"x": calendar.day_index("$t")}},
        {"$match": {"x": {"$gte": 0, "$lt": len(calendar.days)}}},
        # Rounded to the Wh/1000: a float sum depends on the order MongoDB adds in, and the
        # order must never show (a shuffled or duplicated input gives the same rollup).
        {
            "$group": {
                "_id": {"m": {"$subtract": ["$_id", {"$mod": ["$_id", _KEY_BASE]}]}, "x": "$x"},
                "idx": {
                    "$push": {
                        "$toInt": {
                            "$divide": [
                                {"$subtract": ["$t", {"$arrayElemAt": [{"$literal": calendar.starts}, "$x"]}]},
                                _HOUR_MS,
                            ]
                        }
                    }
                },
                "i": {"$push": {"$round": ["$i", KWH_DECIMALS]}},
                "e": {"$push": {"$round": ["$e", KWH_DECIMALS]}},
                "est": {"$push": {"$round": ["$est", KWH_DECIMALS]}},
                "estx": {"$push": {"$round": ["$estx", KWH_DECIMALS]}},
                "c": {"$sum": "$c"},
                "c2": {"$sum": "$c2"},
                "c3": {"$sum": "$c3"},
                "iv": {"$max": "$iv"},
                "peak": {"$max": "$peak"},
            }
        },
        {
            "$set": {
                "meter": {"$toInt": {"$round": [{"$divide": ["$_id.m", _KEY_BASE]}]}},
                "n": _digit("$c", 0),
                "n_est": _digit("$c", 1),
                "n_edit": _digit("$c", 2),
                "n_q": _digit("$c2", 0),
                "n_v": _digit("$c2", 1),
                "n_interp": _digit("$c2", 2),
                "n_prof": _digit("$c3", 0),
                "n_ref": _digit("$c3", 1),
                "n_hub": _digit("$c3", 2),
                "hours": {"$toLong": hours},
                "day": {"$arrayElemAt": [{"$literal": calendar.days}, "$_id.x"]},
            }
        },
        {
            "$project": {
                "_id": {"$concat": [{"$toString": "$meter"}, ":", "$day"]},
                "meter": 1,
                "day": 1,
                "start": {"$toDate": day_start},
                "hours": 1,
                **{name: _hourly_array(source) for name, source in _ARRAYS.items()},
                "total_import_kwh": {"$round": [{"$sum": "$i"}, KWH_DECIMALS]},
                "total_export_kwh": {"$round": [{"$sum": "$e"}, KWH_DECIMALS]},
                "total_estimated_import_kwh": {"$round": [{"$sum": "$est"}, KWH_DECIMALS]},
                "total_estimated_export_kwh": {"$round": [{"$sum": "$estx"}, KWH_DECIMALS]},
                "intervals": "$n",
                "estimated_intervals": "$n_est",
                "edited_intervals": "$n_edit",
                # Intervals per quality code (mdms.core.reading_quality), every code present.
                "quality_intervals": {
                    rq.VALID.code: {"$subtract": ["$n", {"$add": ["$n_est", "$n_edit", "$n_q", "$n_v"]}]},
                    rq.ESTIMATED_INTERPOLATION.code: "$n_interp",
                    rq.ESTIMATED_PROFILE.code: "$n_prof",
                    rq.ESTIMATED_REFERENCE_DAY.code: "$n_ref",
                    rq.ESTIMATED_DATAHUB.code: "$n_hub",
                    rq.ESTIMATED.code: {
                        "$subtract": ["$n_est", {"$add": ["$n_interp", "$n_prof", "$n_ref", "$n_hub"]}]
                    },
                    rq.EDITED.code: "$n_edit",
                    rq.QUESTIONABLE.code: "$n_q",
                    rq.VALIDATED.code: "$n_v",
                },
                "interval_s": "$iv",
                "expected_intervals": {"$toInt": {"$divide": [{"$multiply": ["$hours", 3600]}, "$iv"]}},
                "missing_intervals": {
                    "$max": [
                        0,
                        {"$subtract": [{"$toInt": {"$divide": [{"$multiply": ["$hours", 3600]}, "$iv"]}}, "$n"]},
                    ]
                },
                "max_demand_kw": "$peak.kw",
                "max_demand_at": {"$toDate": {"$add": [base, {"$subtract": [0, "$peak.neg_at"]}]}},
                "computed_at": {"$literal": stamp},
            }
        },
        {"$merge": {"into": ROLLUPS_DAILY, "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}},
    ]


_ARRAYS = {"import_kwh": "$i", "export_kwh": "$e", "estimated_import_kwh": "$est", "estimated_export_kwh": "$estx"}


def _hourly_array(source: str) -> dict[str, Any]:
    """The pushed (idx, value) pairs as a dense array of `hours` values, 0 for an hour without data."""
    return {
        "$map": {
            "input": {"$range": [0, "$hours"]},
            "as": "k",
            "in": {
                "$let": {
                    "vars": {"j": {"$indexOfArray": ["$idx", "$$k"]}},
                    "in": {"$cond": [{"$gte": ["$$j", 0]}, {"$arrayElemAt": [source, "$$j"]}, 0.0]},
                }
            },
        }
    }


def recompute_daily(meter_pks: Sequence[int], start: dt.datetime, end: dt.datetime, *, interval_s: int) -> None:
    """Recompute the daily rollups of these meters for the local days in [start, end) from scratch.

    `start` and `end` must be local midnights (aware). `interval_s` is the length assumed for a
    reading that does not say its own. A day left without any value loses its document.
    """
    if not meter_pks:
        return
    stamp = dt.datetime.now(dt.UTC)
    pipeline = _rollup_pipeline(meter_pks, start, end, interval_s, stamp)
    collection(READINGS).aggregate(pipeline, allowDiskUse=True)
    collection(ROLLUPS_DAILY).delete_many(
        {"meter": {"$in": list(meter_pks)}, "start": {"$gte": start, "$lt": end}, "computed_at": {"$lt": stamp}}
    )


# What billing's bulk read of day profiles needs (leaving out the totals halves what is decoded).
PROFILE_FIELDS = (
    "start",
    "import_kwh",
    "export_kwh",
    "estimated_import_kwh",
    "estimated_export_kwh",
    "max_demand_kw",
    "max_demand_at",
    "intervals",
    "expected_intervals",
    "estimated_intervals",
)


def daily_documents(
    meter_pks: Sequence[int], first_day: dt.date, end_day: dt.date, *, fields: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Daily rollup documents of these meters for local days first_day <= day < end_day, by meter and day."""
    projection: dict[str, Any] = {"_id": 0}
    if fields is not None:
        projection.update({"meter": 1, "day": 1, **dict.fromkeys(fields, 1)})
    query = {"meter": {"$in": list(meter_pks)}, "day": {"$gte": first_day.isoformat(), "$lt": end_day.isoformat()}}
    cursor = collection(ROLLUPS_DAILY).find(query, projection, batch_size=10_000)
    if len(meter_pks) == 1:
        cursor = cursor.sort("day", 1)
    return list(cursor)


def upsert_estimates(documents: Sequence[dict[str, Any]]) -> int:
    """Store estimates {meter, ts, energy_import_kwh, energy_export_kwh, interval_s, method}; one per (meter, ts).

    Estimating the same interval again replaces its estimate (the `accepted` mark survives only
    when the value is unchanged).
    """
    if not documents:
        return 0
    now = dt.datetime.now(dt.UTC)
    existing = {
        (doc["meter"], doc["ts"]): doc
        for doc in collection(ESTIMATES).find(
            {"$or": [{"meter": d["meter"], "ts": d["ts"]} for d in documents]}, {"_id": 0}
        )
    }
    operations = []
    for document in documents:
        before = existing.get((document["meter"], document["ts"]))
        accepted = bool(
            before and before.get("accepted") and before["energy_import_kwh"] == document["energy_import_kwh"]
        )
        quality = rq.estimate_quality(document.get("method")).code
        operations.append(
            pymongo.UpdateOne(
                {"meter": document["meter"], "ts": document["ts"]},
                {"$set": {**document, "quality": quality, "accepted": accepted, "received_at": now}},
                upsert=True,
            )
        )
    result = collection(ESTIMATES).bulk_write(operations, ordered=False)
    return result.upserted_count + result.modified_count


def delete_estimates(meter_pk: int, times: Iterable[dt.datetime]) -> int:
    """Drop estimates that a measured reading has made pointless."""
    ts = list(times)
    if not ts:
        return 0
    return collection(ESTIMATES).delete_many({"meter": meter_pk, "ts": {"$in": ts}}).deleted_count


def estimate_for(meter_pk: int, ts: dt.datetime) -> dict[str, Any] | None:
    return collection(ESTIMATES).find_one({"meter": meter_pk, "ts": ts}, {"_id": 0})


def mark_estimate_accepted(meter_pk: int, ts: dt.datetime) -> bool:
    return (
        collection(ESTIMATES).update_one({"meter": meter_pk, "ts": ts}, {"$set": {"accepted": True}}).matched_count > 0
    )


def estimates_for_meter(meter_pk: int, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """One meter's estimates with start < ts <= end, by ts."""
    query = {"meter": meter_pk, "ts": {"$gt": start, "$lte": end}}
    return list(collection(ESTIMATES).find(query, {"_id": 0}).sort("ts", 1))


def set_interval_edit(
    *, meter_pk: int, ts: dt.datetime, import_kwh: float, export_kwh: float | None, interval_s: int, edit_id: int
) -> None:
    """Make an edited value the effective value of (meter, ts); the audit row is `edit_id` in Postgres."""
    values: dict[str, Any] = {
        "meter": meter_pk,
        "ts": ts,
        "energy_import_kwh": import_kwh,
        "interval_s": interval_s,
        "edit_id": edit_id,
        "received_at": dt.datetime.now(dt.UTC),
    }
    if export_kwh is not None:
        values["energy_export_kwh"] = export_kwh
    collection(INTERVAL_EDITS).replace_one({"meter": meter_pk, "ts": ts}, values, upsert=True)


def flags_replace(
    *,
    meter_pk: int,
    start: dt.datetime,
    end: dt.datetime,
    rule: str,
    times: Iterable[dt.datetime],
    flag: int,
    exception: int,
) -> None:
    """Make `times` the intervals of (meter, start < ts <= end) that `rule` flags, each with `flag`
    (reading_quality.FLAG_*) and the exception that holds it; the rule's other flags there go."""
    wanted = sorted(set(times))
    span = {"meter": meter_pk, "rule": rule, "ts": {"$gt": start, "$lte": end}}
    collection(INTERVAL_FLAGS).delete_many({**span, "ts": {"$gt": start, "$lte": end, "$nin": wanted}})
    if wanted:
        collection(INTERVAL_FLAGS).bulk_write(
            [
                pymongo.UpdateOne(
                    {"meter": meter_pk, "ts": ts, "rule": rule},
                    {"$set": {"flag": flag, "exception": exception}},
                    upsert=True,
                )
                for ts in wanted
            ],
            ordered=False,
        )


def flags_clear(*, meter_pk: int, start: dt.datetime, end: dt.datetime, keep_rules: Iterable[str]) -> int:
    """Drop the flags of (meter, start < ts <= end) of every rule not in keep_rules (it no longer fires)."""
    query = {"meter": meter_pk, "ts": {"$gt": start, "$lte": end}, "rule": {"$nin": sorted(set(keep_rules))}}
    return collection(INTERVAL_FLAGS).delete_many(query).deleted_count


def flags_set_for_exception(exception: int, flag: int) -> int:
    """Set the flag of every interval an exception holds (billing staff closed it: validated)."""
    return collection(INTERVAL_FLAGS).update_many({"exception": exception}, {"$set": {"flag": flag}}).modified_count


def raw_copies(meter_pk: int, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Every stored copy of one meter's readings with start < ts <= end, duplicates included, by ts.

    Validation needs the copies themselves (conflicting duplicates); everything else reads deduped.
    """
    query = {"meter": meter_pk, "ts": {"$gt": start, "$lte": end}}
    cursor = collection(READINGS).find(query, {"_id": 0}).sort([("ts", 1), ("received_at", 1)])
    return list(cursor)


def meters_with_readings(start: dt.datetime, end: dt.datetime) -> list[int]:
    """The meters with at least one reading with start < ts <= end (whom a backfill must cover)."""
    return sorted(collection(READINGS).distinct("meter", {"ts": {"$gt": start, "$lte": end}}))


def hourly_profile(meter_pk: int, start: dt.datetime, end: dt.datetime) -> dict[tuple[int, int], tuple[float, float]]:
    """The meter's mean measured (import, export) kWh per interval by (ISO weekday, local hour), start < ts <= end."""
    tz = str(local_zone())
    pipeline: list[dict[str, Any]] = [
        {"$match": {"meter": meter_pk, "ts": {"$gt": start, "$lte": end}}},
        {
            "$group": {
                "_id": "$ts",
                "i": {"$first": "$energy_import_kwh"},
                "e": {"$first": "$energy_export_kwh"},
                "iv": {"$first": "$interval_s"},
            }
        },
        # A negative value is a fault, not a habit of the meter.
        {"$match": {"i": {"$gte": 0}}},
        {"$set": {"begin": {"$subtract": ["$_id", {"$multiply": [{"$ifNull": ["$iv", DEFAULT_INTERVAL_S]}, 1000]}]}}},
        {
            "$group": {
                "_id": {
                    "weekday": {"$isoDayOfWeek": {"date": "$begin", "timezone": tz}},
                    "hour": {"$hour": {"date": "$begin", "timezone": tz}},
                },
                "i": {"$avg": "$i"},
                "e": {"$avg": {"$ifNull": ["$e", 0]}},
            }
        },
    ]
    rows = collection(READINGS).aggregate(pipeline, allowDiskUse=True)
    return {(int(row["_id"]["weekday"]), int(row["_id"]["hour"])): (float(row["i"]), float(row["e"])) for row in rows}


def hourly_profile_from_rollups(
    meter_pk: int, start: dt.datetime, end: dt.datetime
) -> dict[tuple[int, int], tuple[float, float]]:
    """hourly_profile's answer from the daily rollups: the mean measured (import, export) kWh per
    interval by (ISO weekday, local hour), over the whole local days inside [start, end).

    For pages (the consumer's bill projection): one indexed read of at most a few dozen small
    documents, where hourly_profile unpacks and groups every raw reading of four weeks with a time
    zone per row. Only days without missing intervals count, and in them only hours without an
    estimate, so that each hour's kWh is the sum of its measured intervals.
    """
    zone = local_zone()
    first = start.astimezone(zone).date()
    if dt.datetime.combine(first, dt.time(), tzinfo=zone) < start:
        first += dt.timedelta(days=1)
    last = end.astimezone(zone).date()  # the day `end` falls in is not whole before it: excluded
    sums: dict[tuple[int, int], list[float]] = {}
    for document in daily_documents(
        [meter_pk],
        first,
        last,
        fields=[
            "start",
            "hours",
            "import_kwh",
            "export_kwh",
            "estimated_import_kwh",
            "missing_intervals",
            "interval_s",
        ],
    ):
        if document.get("missing_intervals"):
            continue
        per_hour = 3600 / (document.get("interval_s") or 900)
        day_start = document["start"].replace(tzinfo=dt.UTC)
        estimated = document.get("estimated_import_kwh") or []
        for k, import_kwh in enumerate(document["import_kwh"]):
            if k < len(estimated) and estimated[k]:
                continue
            local = (day_start + dt.timedelta(hours=k)).astimezone(zone)
            slot = sums.setdefault((local.isoweekday(), local.hour), [0.0, 0.0, 0])
            slot[0] += import_kwh / per_hour
            slot[1] += document["export_kwh"][k] / per_hour
            slot[2] += 1
    return {key: (i / n, e / n) for key, (i, e, n) in sums.items() if n}


def history_mean_import(meter_pk: int, first_day: dt.date, end_day: dt.date) -> tuple[float, int]:
    """Mean import per interval over the meter's daily rollups in [first_day, end_day), and the intervals it rests on."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"meter": meter_pk, "day": {"$gte": first_day.isoformat(), "$lt": end_day.isoformat()}}},
        {
            "$group": {
                "_id": None,
                "kwh": {"$sum": {"$subtract": ["$total_import_kwh", "$total_estimated_import_kwh"]}},
                "n": {"$sum": {"$subtract": ["$intervals", "$estimated_intervals"]}},
            }
        },
    ]
    rows = list(collection(ROLLUPS_DAILY).aggregate(pipeline))
    if not rows or not rows[0]["n"]:
        return 0.0, 0
    return float(rows[0]["kwh"]) / int(rows[0]["n"]), int(rows[0]["n"])


def _quality_count(code: str) -> dict[str, Any]:
    """A rollup document's count of one quality code; for a document computed before the codes
    existed, what reading_quality.counts_from_legacy gives."""
    legacy: Any = 0
    if code == rq.VALID.code:
        legacy = {"$max": [0, {"$subtract": ["$intervals", {"$add": ["$estimated_intervals", "$edited_intervals"]}]}]}
    elif code == rq.ESTIMATED.code:
        legacy = "$estimated_intervals"
    elif code == rq.EDITED.code:
        legacy = {"$ifNull": ["$edited_intervals", 0]}
    return {"$ifNull": [f"$quality_intervals.{code}", legacy]}


def billing_totals(
    meter_pks: Sequence[int],
    first_day: dt.date,
    end_day: dt.date,
    labels_by_day: dict[str, list[int]],
    label_count: int,
) -> list[dict[str, Any]]:
    """Per meter, the sums billing needs over local days [first_day, end_day), computed by MongoDB.

    `labels_by_day` maps "YYYY-MM-DD" to the bucket number (0 <= n < label_count) of each hour of
    that day, so time-of-use bucketing happens next to the data and only one small document per
    meter comes back (decoding 10,000 meters x 744 hourly values in Python takes seconds).
    Returns {meter, import_kwh, export_kwh, estimated_import_kwh, estimated_export_kwh, by_label:
    [label_count sums], estimated_by_label: [label_count sums of the estimated import], intervals,
    estimated_intervals, quality_intervals ({code: intervals}), days, max_demand_kw, max_demand_at}. (Rollups computed before estimated
    export was kept count it as 0 until recomputed.)
    """
    hours = {"$range": [0, "$hours"]}
    # $getField takes only constant names in MongoDB 6.0: look the day up in a parallel list.
    days = sorted(labels_by_day)
    labels = {
        "$arrayElemAt": [
            {"$literal": [labels_by_day[day] for day in days]},
            {"$indexOfArray": [{"$literal": days}, "$day"]},
        ]
    }

    def per_label(array: str) -> list[dict[str, Any]]:
        return [
            {
                "$sum": {
                    "$map": {
                        "input": hours,
                        "as": "k",
                        "in": {
                            "$cond": [
                                {"$eq": [{"$arrayElemAt": ["$labels", "$$k"]}, n]},
                                {"$ifNull": [{"$arrayElemAt": [array, "$$k"]}, 0]},
                                0,
                            ]
                        },
                    }
                }
            }
            for n in range(label_count)
        ]

    def label_sums(name: str) -> list[dict[str, Any]]:
        return [
            {"$sum": {"$map": {"input": name, "as": "d", "in": {"$arrayElemAt": ["$$d", n]}}}}
            for n in range(label_count)
        ]

    pipeline: list[dict[str, Any]] = [
        {
            "$match": {
                "meter": {"$in": list(meter_pks)},
                "day": {"$gte": first_day.isoformat(), "$lt": end_day.isoformat()},
            }
        },
        {"$set": {"labels": labels}},
        {"$set": {"by_label": per_label("$import_kwh"), "est_by_label": per_label("$estimated_import_kwh")}},
        {
            "$group": {
                "_id": "$meter",
                "import_kwh": {"$sum": "$total_import_kwh"},
                "export_kwh": {"$sum": "$total_export_kwh"},
                "estimated_import_kwh": {"$sum": "$total_estimated_import_kwh"},
                "estimated_export_kwh": {"$sum": {"$ifNull": ["$total_estimated_export_kwh", 0]}},
                "by_label": {"$push": "$by_label"},
                "est_by_label": {"$push": "$est_by_label"},
                "intervals": {"$sum": "$intervals"},
                "estimated_intervals": {"$sum": "$estimated_intervals"},
                **{f"q_{n}": {"$sum": _quality_count(code)} for n, code in enumerate(rq.CODES)},
                "days": {"$sum": 1},
                "peak": {
                    "$top": {
                        "sortBy": {"max_demand_kw": -1, "max_demand_at": 1},
                        "output": {"kw": "$max_demand_kw", "at": "$max_demand_at"},
                    }
                },
            }
        },
        {
            "$project": {
                "_id": 0,
                "meter": "$_id",
                "import_kwh": 1,
                "export_kwh": 1,
                "estimated_import_kwh": 1,
                "estimated_export_kwh": 1,
                "by_label": label_sums("$by_label"),
                "estimated_by_label": label_sums("$est_by_label"),
                "intervals": 1,
                "estimated_intervals": 1,
                "quality_intervals": {code: f"$q_{n}" for n, code in enumerate(rq.CODES)},
                "days": 1,
                "max_demand_kw": "$peak.kw",
                "max_demand_at": "$peak.at",
            }
        },
    ]
    return list(collection(ROLLUPS_DAILY).aggregate(pipeline, allowDiskUse=True))


def intervals_held(meters_by_day: dict[dt.date, Sequence[int]]) -> int:
    """The intervals with a value in the daily rollups of these meter-days, summed: how many readings
    recomputing them read (the rollup follower's cost, against the readings it was given)."""
    ids = [f"{pk}:{day.isoformat()}" for day, pks in meters_by_day.items() for pk in pks]
    total = 0
    for offset in range(0, len(ids), 10_000):
        found = list(
            collection(ROLLUPS_DAILY).aggregate(
                [
                    {"$match": {"_id": {"$in": ids[offset : offset + 10_000]}}},
                    {"$group": {"_id": None, "n": {"$sum": "$intervals"}}},
                ]
            )
        )
        total += int(found[0]["n"]) if found else 0
    return total
