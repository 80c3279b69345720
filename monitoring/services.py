"""Anomaly detection over stored readings: load, judge with the rules and the baselines, store.

`anomalies_detect` works on any set of (meters, time range) and is idempotent; the beat job
`anomalies_detect_pending` feeds it from the stored-batches stream (consumer group "detect"), so
that every stored reading is judged once, a few seconds after it is stored.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from mdms.core import registers
from mdms.core.followers import follower_run
from mdms.core.localtime import local_zone
from mdms.core.models import Meter
from mdms.core.reading_fields import DEFAULT_INTERVAL_S, READING_FIELD_NAMES
from mdms.core.timeseries import anomalies as store
from monitoring.detection import MeterSpec, episodes, rules, statistical

DETECT_GROUP = "detect"
# The register rules compare with the previous reading if it is at most this old (a meter silent
# longer has its first reading after the gap judged without them).
PREVIOUS_LOOKBACK = dt.timedelta(hours=6)
PREVIOUS_NEAR = dt.timedelta(minutes=31)
BASELINE_CHUNK = 200
# The detection process keeps the baselines it read for this long (a baseline is ~5 kB; 10,000
# meters are 50 MB): loading them is a third of a batch's cost, and they change once a day.
BASELINE_CACHE_S = 600.0
_baseline_cache: dict[tuple[int, dt.datetime], tuple[float, dict[str, Any]]] = {}
# One run takes this many stream entries at a time, and stops after this long so beat's next
# tick finds the lock free.
TAKE = 500
MAX_RUN_S = 30.0
STATUS_KEY = "monitoring:detect:status"


@dataclass(frozen=True)
class DetectionResult:
    scanned: int
    stored: int
    newest_received_at: dt.datetime | None = None


def meter_specs(meter_pks: Iterable[int]) -> dict[int, MeterSpec]:
    rows = Meter.objects.filter(pk__in=list(meter_pks)).values(
        "pk", "nominal_voltage_v", "nominal_frequency_hz", "rated_current_a", "interval_s",
        "premise__feeder_id", "premise__feeder__region_id", "register_digits", "register_decimals",
    )  # fmt: skip
    return {
        row["pk"]: MeterSpec(
            pk=row["pk"],
            nominal_voltage_v=float(row["nominal_voltage_v"]),
            nominal_frequency_hz=float(row["nominal_frequency_hz"]),
            rated_current_a=float(row["rated_current_a"]),
            interval_s=int(row["interval_s"]),
            feeder_pk=row["premise__feeder_id"],
            region_pk=row["premise__feeder__region_id"],
            register_capacity_kwh=registers.capacity_kwh(
                digits=row["register_digits"], decimals=row["register_decimals"]
            ),
        )
        for row in rows
    }


def _day_start(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def baselines_refresh(*, specs: dict[int, MeterSpec], first_ts: dict[int, dt.datetime]) -> dict[int, dict[str, Any]]:
    """Each meter's baseline for the UTC day of its given time: exactly the 4 weeks before that day.

    The stored one when it is for that day, else built now (and stored when it is the newest). A
    baseline never includes the readings being judged, and which one a reading is judged against
    depends on its day only, never on when or in what batches it arrived: history imported
    afterwards is judged as the live feed would have been.
    """
    clock = time.monotonic()
    wanted = {pk: _day_start(ts) for pk, ts in first_ts.items()}
    current: dict[int, dict[str, Any]] = {}
    for pk, through in wanted.items():
        cached = _baseline_cache.get((pk, through))
        if cached and clock - cached[0] < BASELINE_CACHE_S:
            current[pk] = cached[1]
    fetched = store.baselines_for([pk for pk in wanted if pk not in current])
    stale: dict[dt.datetime, list[int]] = defaultdict(list)
    for pk, through in wanted.items():
        if pk in current:
            continue
        doc = fetched.get(pk)
        if doc is not None and doc["through"] == through:
            current[pk] = doc
            _baseline_cache[(pk, through)] = (clock, doc)
        else:
            stale[through].append(pk)
    newest = {pk: doc["through"] for pk, doc in fetched.items()}
    for through, pks in sorted(stale.items()):
        current.update(baselines_rebuild(meter_pks=pks, through=through, specs=specs, stored_through=newest))
    return current


def baselines_rebuild(
    *,
    meter_pks: Sequence[int],
    through: dt.datetime,
    specs: dict[int, MeterSpec] | None = None,
    stored_through: dict[int, dt.datetime] | None = None,
) -> dict[int, dict[str, Any]]:
    """Rebuild the baselines of these meters from the 4 weeks before `through`, and store them.

    With stored_through (each meter's stored baseline day), a baseline older than the stored one
    is used but not stored: the stored one stays the newest, for live detection.
    """
    tz = local_zone()
    specs = specs if specs is not None else meter_specs(meter_pks)
    rebuilt: dict[int, dict[str, Any]] = {}
    for chunk in range(0, len(meter_pks), BASELINE_CHUNK):
        pks = list(meter_pks[chunk : chunk + BASELINE_CHUNK])
        readings: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for reading in store.history(pks, through - statistical.HISTORY, through, statistical.FIELD_NAMES):
            readings[reading["meter"]].append(reading)
        fresh: list[dict[str, Any]] = [
            {
                "_id": pk,
                "through": through,
                "fields": statistical.baseline(
                    readings.get(pk, []), tz, specs[pk].interval_s if pk in specs else DEFAULT_INTERVAL_S
                ),
            }
            for pk in pks
        ]
        older = stored_through or {}
        store.baselines_save([doc for doc in fresh if doc["_id"] not in older or older[doc["_id"]] <= through])
        rebuilt.update({doc["_id"]: doc for doc in fresh})
        _baseline_cache.update({(doc["_id"], through): (time.monotonic(), doc) for doc in fresh})
    return rebuilt


def current_baseline_day(now: dt.datetime | None = None) -> dt.datetime:
    """The `through` of the baselines live detection uses now: the start of the current UTC day."""
    return _day_start(now or dt.datetime.now(tz=dt.UTC))


def baselines_rebuild_all(*, now: dt.datetime | None = None) -> int:
    """The nightly job: every active meter's baseline for today, unless detection already built it."""
    through = current_baseline_day(now)
    pks = list(Meter.objects.filter(status=Meter.Status.ACTIVE).order_by("pk").values_list("pk", flat=True))
    stored = store.baselines_for(pks)
    stale = [pk for pk in pks if pk not in stored or stored[pk]["through"] != through]
    return len(baselines_rebuild(meter_pks=stale, through=through))


def _document(spec: MeterSpec, reading: dict[str, Any], finding: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "timestamp": reading["ts"],
        "meter_id": spec.pk,
        "data": {name: reading[name] for name in READING_FIELD_NAMES if name in reading},
        "anomalies": list(finding.fields),
        "rule": finding.rule,
        "severity": finding.severity,
        "baseline": finding.baseline,
        "feeder": spec.feeder_pk,
        "region": spec.region_pk,
        "detected_at": now,
    }


def _episodes_mark(documents: Sequence[dict[str, Any]]) -> None:
    """Give each statistical finding its episode (monitoring.detection.episodes): the first of an
    episode stays a warning, the ones that continue it become "info", both with `episode_start`."""
    flagged = sorted(
        (doc for doc in documents if doc["rule"] == episodes.EPISODE_RULE),
        key=lambda doc: (doc["meter_id"], doc["timestamp"]),
    )
    if not flagged:
        return
    first: dict[int, dt.datetime] = {}
    for doc in flagged:
        first.setdefault(doc["meter_id"], doc["timestamp"])
    # The meter's previous finding, from an earlier batch (a live feed judges one interval at a time).
    open_episodes: dict[int, episodes.Episode] = {}
    for pk, row in store.latest_anomalies(first, episodes.EPISODE_RULE, episodes.QUIET).items():
        started = row.get("episode_start") or row["timestamp"]  # found before episodes: its own
        open_episodes[pk] = episodes.Episode(start=started, last=row["timestamp"], fields=frozenset(row["anomalies"]))
    for doc in flagged:
        episode = episodes.follow(doc["timestamp"], doc["anomalies"], open_episodes.get(doc["meter_id"]))
        doc["episode_start"] = episode.start
        if episode.start != doc["timestamp"]:
            doc["severity"] = episodes.CONTINUATION_SEVERITY
        open_episodes[doc["meter_id"]] = episode


def anomalies_detect(*, ranges: Sequence[store.Range]) -> DetectionResult:
    """Judge every reading of the ranges (meters, first ts, last ts) and store new anomalies."""
    readings = store.readings_in(ranges)
    if not readings:
        return DetectionResult(scanned=0, stored=0)
    by_meter: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for reading in readings:
        by_meter[reading["meter"]].append(reading)
    specs = meter_specs(by_meter)
    first_ts = {pk: rows[0]["ts"] for pk, rows in by_meter.items() if pk in specs}
    # Most meters reported an interval ago: a short look back finds them for a tenth of the reads.
    previous = store.readings_before(first_ts, PREVIOUS_NEAR)
    missing = {pk: ts for pk, ts in first_ts.items() if pk not in previous}
    if missing:
        previous.update(store.readings_before(missing, PREVIOUS_LOOKBACK))
    # Each reading is judged against the baseline of its own UTC day, days taken in order: a batch
    # of history (an import, a backfill) spanning weeks is judged as the live feed would have been,
    # not all of it against the weeks before its first reading (when the meter may have had no data).
    days_by_meter: dict[dt.datetime, dict[int, dt.datetime]] = defaultdict(dict)
    for pk, rows in by_meter.items():
        if pk in specs:
            for reading in rows:
                days_by_meter[_day_start(reading["ts"])].setdefault(pk, reading["ts"])
    fields_by_day: dict[tuple[int, dt.datetime], dict[str, Any]] = {}
    for day in sorted(days_by_meter):
        baselines = baselines_refresh(specs=specs, first_ts=days_by_meter[day])
        for pk in days_by_meter[day]:
            fields_by_day[(pk, day)] = (baselines.get(pk) or {}).get("fields") or {}
    tz = local_zone()
    now = dt.datetime.now(tz=dt.UTC)
    documents: list[dict[str, Any]] = []
    for pk, rows in by_meter.items():
        spec = specs.get(pk)
        if spec is None:  # deleted from the registry since; nothing to judge it by
            continue
        before = previous.get(pk)
        for reading in rows:
            for finding in rules.check(spec, reading, before):
                documents.append(_document(spec, reading, finding, now))
            fields = fields_by_day[(pk, _day_start(reading["ts"]))]
            for judged in statistical.check(spec, reading, fields, tz):
                documents.append(_document(spec, reading, judged, now))
            before = reading
    _episodes_mark(documents)
    stored = store.insert_anomalies(documents)
    newest = max((r["received_at"] for r in readings if r.get("received_at")), default=None)
    return DetectionResult(scanned=len(readings), stored=stored, newest_received_at=newest)


def anomalies_detect_pending(
    *, consumer: str, group: str = DETECT_GROUP, budget_s: float = MAX_RUN_S
) -> dict[str, Any]:
    """The beat job: judge what the ingest stored since the last run, then acknowledge it.

    One run at a time (mdms.core.followers: a Redis lock renewed by a heartbeat); a crash before
    `done` leaves the entries pending, and once the heartbeat has stopped they are claimed again and
    re-judged, which stores nothing twice.
    """
    started = time.monotonic()
    scanned = stored = 0
    lag_s: float | None = None
    with follower_run(group, consumer) as run:
        if run is None:
            return {"skipped": "another run holds the lock"}
        # At least one round, then more until the budget is spent.
        while True:
            entries = run.take(count=TAKE)
            if not entries:
                break
            ranges = [(b.meter_pks, b.min_ts, b.max_ts) for _id, b in entries if b.kind == "readings"]
            result = anomalies_detect(ranges=ranges)
            run.done(entry_id for entry_id, _b in entries)
            scanned += result.scanned
            stored += result.stored
            if result.newest_received_at is not None:
                # Stored-to-visible: how long the newest reading waited for judgement.
                lag_s = (dt.datetime.now(tz=dt.UTC) - result.newest_received_at).total_seconds()
            if time.monotonic() - started >= min(budget_s, MAX_RUN_S):
                break
    status = {
        "ran_at": dt.datetime.now(tz=dt.UTC).isoformat(),
        "scanned": scanned,
        "stored": stored,
        "lag_s": lag_s,
        "seconds": round(time.monotonic() - started, 3),
    }
    cache.set(STATUS_KEY, status, timeout=3600)
    return status
