"""Anomaly and outage detection, scored on the simulator's labelled faults.

1,000 simulated meters (20 feeders of 50) over 3 weeks of 15-minute readings, with sag, swell,
frequency, over-current, register and outage faults injected at known times, generated with the
simulator's pure generator and stored with insert_readings (no MQTT). Measured:
- precision and recall per fault kind of this project's detector (rules + robust hour-of-day
  baseline) and of the MongoDB reference's 12-reading 3-sigma method, on the same weeks 2 and 3
  (week 1 is the baseline's warm-up; the reference sees it too, as its window needs);
- outage detection delay on the last day, replayed minute by minute through the outage service,
  including a feeder-wide outage in which half the meters' last gasps are lost;
- that ordinary load swings raise no incident;
- the detection job's throughput over the last day in 15-minute batches, while another process
  writes readings at about 5,000/s into the same collection (the ingest's write load).
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

from bench.common import save_results, save_section
from ingest.simulator.faults import Fault, FaultKind, FaultPlan
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from mdms.core import timeseries
from mdms.core.models import Feeder, Meter, Premise, Region
from mdms.core.mqtt.topics import Kind
from mdms.core.timeseries import anomalies as anomaly_store
from mdms.core.timeseries.readings import insert_events, insert_readings, reading_document
from monitoring import outages, services
from monitoring.detection import ALERTING, episodes, statistical
from monitoring.models import IncidentMeter, OutageIncident

METERS = 1_000
FEEDERS = 20
DAYS = 21
WARMUP_DAYS = 7
INTERVAL_S = 900
SEED = 20
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday in winter: heating, high evening peaks
END = START + dt.timedelta(days=DAYS)
SCORED_FROM = START + dt.timedelta(days=WARMUP_DAYS)
LAST_DAY = END - dt.timedelta(days=1)
RATES = {
    FaultKind.VOLTAGE_SAG: 0.04,
    FaultKind.VOLTAGE_SWELL: 0.04,
    FaultKind.FREQUENCY_EXCURSION: 0.04,
    FaultKind.OVER_CURRENT: 0.04,
    FaultKind.STUCK_REGISTER: 0.01,
    FaultKind.REGISTER_BACKWARDS: 0.01,
    FaultKind.OUTAGE: 0.01,
}
# Scored kind -> (fault kinds, reading field the detection must flag).
SCORED = {
    "voltage": ((FaultKind.VOLTAGE_SAG, FaultKind.VOLTAGE_SWELL), "voltage_v"),
    "frequency": ((FaultKind.FREQUENCY_EXCURSION,), "frequency_hz"),
    "current": ((FaultKind.OVER_CURRENT,), "current_a"),
}
FIELDS = ("voltage_v", "frequency_hz", "current_a", "power_w", "energy_import_kwh", "power_factor")
# The feeder-wide outage on the last day: feeder 0, 17:00-18:30 UTC, every other last gasp lost.
FEEDER_OUTAGE = (LAST_DAY + dt.timedelta(hours=17, seconds=7), LAST_DAY + dt.timedelta(hours=18, minutes=30, seconds=7))
INGEST_RATE = 5_000  # readings/s written alongside the throughput measurement


def _meters() -> list[tuple[int, str, int]]:
    """(pk, serial, feeder index) of METERS active meters on FEEDERS feeders, created once."""
    region, _ = Region.objects.get_or_create(code="detect-bench", defaults={"name": "Detection bench"})
    feeders = [
        Feeder.objects.get_or_create(code=f"det-f{n:02d}", defaults={"region": region, "name": f"Bench feeder {n}"})[0]
        for n in range(FEEDERS)
    ]
    existing = set(Meter.objects.filter(serial__startswith="DET").values_list("serial", flat=True))
    missing = [n for n in range(METERS) if f"DET{n:06d}" not in existing]
    premises = Premise.objects.bulk_create(
        [
            Premise(
                feeder=feeders[n % FEEDERS],
                address=f"{n} Bench Road",
                latitude=Decimal("45.75"),
                longitude=Decimal("4.85"),
            )
            for n in missing
        ],
        batch_size=2000,
    )
    Meter.objects.bulk_create(
        [
            Meter(serial=f"DET{n:06d}", premise=premise, status=Meter.Status.ACTIVE, interval_s=INTERVAL_S)
            for n, premise in zip(missing, premises, strict=True)
        ],
        batch_size=2000,
    )
    rows = Meter.objects.filter(serial__startswith="DET").order_by("serial").values_list("pk", "serial")
    return [(pk, serial, int(serial[3:]) % FEEDERS) for pk, serial in rows][:METERS]


def _generate(meters: list[tuple[int, str, int]]) -> tuple[dict[int, list[dict[str, Any]]], list[Any], list[Fault]]:
    """Readings per meter, events (with their sending time), faults: the simulator's pure generator."""
    readings: dict[int, list[dict[str, Any]]] = {}
    events: list[tuple[dt.datetime, dict[str, Any]]] = []
    faults: list[Fault] = []
    feeder_zero = [serial for _pk, serial, feeder in meters if feeder == 0]
    explicit = tuple(Fault(serial, FaultKind.OUTAGE, *FEEDER_OUTAGE) for serial in feeder_zero)
    plan = FaultPlan(rates=RATES, explicit=explicit)
    started = time.monotonic()
    for index, (pk, serial, feeder) in enumerate(meters):
        profile = profile_for(serial, seed=SEED, feeder=f"det-f{feeder:02d}")
        meter = SimulatedMeter(profile, SEED, INTERVAL_S, plan, time_zone="Europe/Paris")
        emissions, began = meter.advance(START, END)
        faults.extend(began)
        rows = []
        for emission in emissions:
            payload = emission.payload
            ts = dt.datetime.fromisoformat(payload["ts"].replace("Z", "+00:00"))
            if emission.kind is Kind.READINGS:
                rows.append(reading_document(meter_pk=pk, ts=ts, received_at=ts, values=payload, interval_s=INTERVAL_S))
            else:
                events.append((emission.at, {"meter": pk, "ts": ts, "type": payload["type"], "received_at": ts}))
        readings[pk] = sorted({row["ts"]: row for row in rows}.values(), key=lambda row: row["ts"])
        if index % 100 == 99:
            print(f"\rdetect: generated {index + 1:,} meters ({time.monotonic() - started:.0f} s)", end="", flush=True)
    print()
    return readings, events, faults


def _reset(meter_pks: list[int]) -> None:
    IncidentMeter.objects.all().delete()
    OutageIncident.objects.all().delete()
    timeseries.ensure_collections()
    for name, key in (
        (timeseries.READINGS, "meter"),
        (timeseries.EVENTS, "meter"),
        (timeseries.ANOMALIES, "meter_id"),
        (timeseries.ANOMALY_BASELINES, "_id"),
        (timeseries.METER_LAST_SEEN, "_id"),
    ):
        timeseries.collection(name).delete_many({key: {"$in": meter_pks}})
    timeseries.collection(timeseries.READINGS).delete_many({"meter": {"$gte": 10_000_000}})


def _detect_history(meter_pks: list[int]) -> None:
    """Weeks 1-2 and the first days of week 3 judged a week at a time (one baseline each), up to the last day."""
    start = START
    while start < LAST_DAY:
        end = min(start + dt.timedelta(days=7), LAST_DAY)
        for chunk in range(0, len(meter_pks), 250):
            services.anomalies_detect(ranges=[(meter_pks[chunk : chunk + 250], start + dt.timedelta(seconds=1), end)])
        start = end


def _writer(stop: Any, counter: Any) -> None:
    """Readings of 10,000 other meters at about INGEST_RATE a second, in batches of 500 (a process
    of its own, so that it competes for the machine and MongoDB, not for this process's GIL)."""
    base = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    step = 0
    while not stop.is_set():
        began = time.monotonic()
        ts = base + dt.timedelta(seconds=INTERVAL_S * (step // 20))
        pks = range(10_000_000 + (step % 20) * 500, 10_000_000 + (step % 20 + 1) * 500)
        insert_readings(
            [
                reading_document(
                    meter_pk=pk,
                    ts=ts,
                    received_at=ts,
                    values={"energy_import_kwh": 0.1, "power_w": 400.0, "voltage_v": 230.0},
                    interval_s=INTERVAL_S,
                )
                for pk in pks
            ]
        )
        with counter.get_lock():
            counter.value += 500
        step += 1
        time.sleep(max(0.0, 500 / INGEST_RATE - (time.monotonic() - began)))


def _detect_live(meter_pks: list[int]) -> tuple[float, int, float]:
    """The last day in 15-minute batches, as the beat job sees them; (readings/s, scanned, ingest/s)."""
    context = multiprocessing.get_context("fork")
    stop, counter = context.Event(), context.Value("l", 0)
    writer = context.Process(target=_writer, args=(stop, counter), daemon=True)
    writer.start()
    started = time.monotonic()
    scanned = 0
    ts = LAST_DAY
    while ts < END:
        result = services.anomalies_detect(
            ranges=[(meter_pks, ts + dt.timedelta(seconds=1), ts + dt.timedelta(seconds=INTERVAL_S))]
        )
        scanned += result.scanned
        ts += dt.timedelta(seconds=INTERVAL_S)
    seconds = time.monotonic() - started
    stop.set()
    writer.join()
    return scanned / seconds, scanned, counter.value / seconds


def _flags_ours(severities: tuple[str, ...] | None) -> dict[str, set[tuple[int, dt.datetime]]]:
    """The (meter, interval) pairs flagged per field. A statistical finding that continues an episode
    (monitoring.detection.episodes) is stored as info and alerts nobody, but flags its interval as
    it did before episodes: it counts with the severities it would have had."""
    flagged: dict[str, set[tuple[int, dt.datetime]]] = defaultdict(set)
    for anomaly in anomaly_store.all_anomalies(SCORED_FROM, END + dt.timedelta(seconds=1)):
        if severities is None or anomaly["severity"] in severities or anomaly["rule"] == episodes.EPISODE_RULE:
            for field in anomaly["anomalies"]:
                flagged[field].add((anomaly["meter_id"], anomaly["timestamp"]))
    return flagged


def _flags_reference(readings: dict[int, list[dict[str, Any]]]) -> dict[str, set[tuple[int, dt.datetime]]]:
    flagged: dict[str, set[tuple[int, dt.datetime]]] = defaultdict(set)
    for pk, rows in readings.items():
        for ts, fields in statistical.reference_detect(rows):
            if ts > SCORED_FROM:
                for field in fields:
                    flagged[field].add((pk, ts))
    return flagged


def _score(
    flagged: dict[str, set[tuple[int, dt.datetime]]], faults: list[Fault], serial_pk: dict[str, int]
) -> dict[str, float]:
    step = dt.timedelta(seconds=INTERVAL_S)
    scores: dict[str, float] = {}
    for name, (kinds, field) in SCORED.items():
        covered: set[tuple[int, dt.datetime]] = set()
        detected = total = 0
        for fault in faults:
            if fault.kind not in kinds or fault.start < SCORED_FROM or fault.end > END:
                continue
            pk = serial_pk[fault.serial]
            ends = []
            moment = fault.start + step
            while moment <= fault.end:
                ends.append((pk, moment))
                moment += step
            covered.update(ends)
            total += 1
            detected += any(key in flagged[field] for key in ends)
        flags = flagged[field]
        scores[f"recall_{name}"] = round(detected / total, 4) if total else math.nan
        scores[f"precision_{name}"] = round(len(flags & covered) / len(flags), 4) if flags else 0.0
        scores[f"faults_{name}"] = total
        scores[f"flags_{name}"] = len(flags)
    return scores


def _outage_timeline(
    meters: list[tuple[int, str, int]],
    readings: dict[int, list[dict[str, Any]]],
    events: list[Any],
    faults: list[Fault],
) -> dict[str, Any]:
    """Replay the last day minute by minute through the outage service, as its 5-second job would see it."""
    serial_pk = {serial: pk for pk, serial, _f in meters}
    feeder_zero = [pk for pk, _s, feeder in meters if feeder == 0]
    lost = set(feeder_zero[::2])  # these meters' last gasps never arrive
    day_events = sorted(
        [
            (at, event)
            for at, event in events
            if LAST_DAY <= at < END and not (event["type"] == "power_off" and event["meter"] in lost)
        ],
        key=lambda pair: pair[0],
    )
    outage_faults = [
        f for f in faults if f.kind is FaultKind.OUTAGE and LAST_DAY <= f.start < END - dt.timedelta(hours=1)
    ]
    by_ts: dict[dt.datetime, list[tuple[int, dt.datetime]]] = defaultdict(list)
    for pk, rows in readings.items():
        for row in rows:
            if LAST_DAY < row["ts"] <= END:
                by_ts[row["ts"]].append((pk, row["ts"]))
    newest = {
        pk: max((r["ts"] for r in rows if r["ts"] <= LAST_DAY), default=LAST_DAY) for pk, rows in readings.items()
    }
    anomaly_store.last_seen_advance(newest)
    first_out: dict[int, dt.datetime] = {}
    incident_seen: dict[int, dt.datetime] = {}
    event_index = 0
    now = LAST_DAY
    step = dt.timedelta(minutes=1)
    while now < END:
        now += step
        due = []
        while event_index < len(day_events) and day_events[event_index][0] <= now:
            due.append(day_events[event_index][1])
            event_index += 1
        touched: dict[int, str] = {}
        outages.outages_apply_events(events=sorted(due, key=lambda e: e["ts"]), touched=touched)
        # A reading is sent when its interval ends (the simulator's realtime spread is 20 s).
        fresh = {
            pk: ts
            for ts in (now - step + dt.timedelta(seconds=s) for s in range(1, 61))
            for pk, ts in by_ts.get(ts, [])
        }
        outages.outages_apply_readings(newest=fresh, touched=touched)
        outages.outages_check_silent(now=now)
        for meter_pk, incident_pk in IncidentMeter.objects.filter(restored_at__isnull=True).values_list(
            "meter_id", "incident_id"
        ):
            first_out.setdefault(meter_pk, now)
            incident_seen.setdefault(incident_pk, now)
    interval = dt.timedelta(seconds=INTERVAL_S)
    meter_delays, gasp_delays, incident_delays = [], [], []
    missed = 0
    for fault in outage_faults:
        pk = serial_pk[fault.serial]
        seen = first_out.get(pk)
        if seen is None or seen > fault.end + interval:
            missed += pk not in lost
            continue
        delay = max(0.0, (seen - fault.start) / interval)
        meter_delays.append(delay)
        if pk not in lost:
            gasp_delays.append(delay)
    feeder_zero_seen = [first_out[pk] for pk in feeder_zero if pk in first_out]
    if feeder_zero_seen:
        incident_delays.append((min(feeder_zero_seen) - FEEDER_OUTAGE[0]) / interval)
    incidents = list(OutageIncident.objects.all())
    starts = {(serial_pk[f.serial], f.start) for f in outage_faults}
    spurious = 0
    for incident in incidents:
        members = list(incident.meters.values_list("meter_id", "out_since"))
        if not any(
            any(pk == fpk and abs((since - fstart).total_seconds()) <= 3 * INTERVAL_S + 60 for fpk, fstart in starts)
            for pk, since in members
        ):
            spurious += 1
    feeder_incidents = [
        i
        for i in incidents
        if i.feeder is not None
        and i.feeder.code == "det-f00"
        and FEEDER_OUTAGE[0] - interval <= i.started_at <= FEEDER_OUTAGE[1]
    ]
    return {
        "outages": len(outage_faults),
        "missed_with_last_gasp": missed,
        "worst_meter_delay_intervals": round(max(meter_delays, default=0.0), 2),
        "worst_last_gasp_delay_intervals": round(max(gasp_delays, default=0.0), 2),
        "feeder_incident_delay_intervals": round(max(incident_delays, default=math.nan), 2),
        "feeder_incidents": len(feeder_incidents),
        "feeder_incident_meters": max((i.affected_meters for i in feeder_incidents), default=0),
        "feeder_meters": len(feeder_zero),
        "incidents": len(incidents),
        "spurious_incidents": spurious,
        "open_at_end": sum(1 for i in incidents if i.status == OutageIncident.Status.OPEN),
    }


def run() -> dict[str, Any]:
    meters = _meters()
    pks = [pk for pk, _s, _f in meters]
    serial_pk = {serial: pk for pk, serial, _f in meters}
    _reset(pks)
    t0 = time.monotonic()
    readings, events, faults = _generate(meters)
    generated_s = time.monotonic() - t0
    count = sum(len(rows) for rows in readings.values())
    t0 = time.monotonic()
    batch: list[dict[str, Any]] = []
    for rows in readings.values():
        batch.extend(rows)
        if len(batch) >= 50_000:
            insert_readings(batch)
            batch = []
    insert_readings(batch)
    insert_events([event for _at, event in events])
    insert_s = time.monotonic() - t0
    print(f"detect: {count:,} readings generated in {generated_s:.0f} s, stored in {insert_s:.0f} s")

    t0 = time.monotonic()
    _detect_history(pks)
    history_s = time.monotonic() - t0
    history_scanned = sum(1 for rows in readings.values() for r in rows if r["ts"] <= LAST_DAY)
    t0 = time.monotonic()
    services.baselines_rebuild(meter_pks=pks, through=LAST_DAY)
    rebuild_s = time.monotonic() - t0
    rate, live_scanned, ingest_rate = _detect_live(pks)
    print(f"detect: history judged at {history_scanned / history_s:,.0f} readings/s; live {rate:,.0f} readings/s")

    ours = _score(_flags_ours(ALERTING), faults, serial_pk)
    ours_all = _score(_flags_ours(None), faults, serial_pk)
    reference = _score(_flags_reference(readings), faults, serial_pk)
    outage = _outage_timeline(meters, readings, events, faults)

    results: dict[str, Any] = {}
    for name in SCORED:
        results[f"detect_recall_{name}"] = ours[f"recall_{name}"]
        results[f"detect_precision_{name}"] = ours[f"precision_{name}"]
        results[f"reference_detect_recall_{name}"] = reference[f"recall_{name}"]
        results[f"reference_detect_precision_{name}"] = reference[f"precision_{name}"]
    # The worst meter, its last gasp lost or not: the conservative reading of "worst case".
    results["outage_detect_intervals"] = outage["worst_meter_delay_intervals"]
    results["detect_readings_per_s"] = round(rate)
    save_results(results)

    table = "\n".join(
        f"| {name} | {ours[f'faults_{name}']} | {ours[f'recall_{name}']} | {ours[f'precision_{name}']} "
        f"| {ours_all[f'precision_{name}']} | {reference[f'recall_{name}']} | {reference[f'precision_{name}']} "
        f"| {ours[f'flags_{name}']} / {reference[f'flags_{name}']} |"
        for name in SCORED
    )
    save_section(
        "20-detect",
        f"""## Anomaly and outage detection (`bench/detect.py`)

{METERS:,} simulated meters on {FEEDERS} feeders, {DAYS} days of 15-minute readings ({count:,} readings) from
{START:%Y-%m-%d}, faults injected by the simulator's fault plan (per meter per day: {", ".join(f"{k.value} {v}" for k, v in RATES.items())}).
Scored on days {WARMUP_DAYS + 1}-{DAYS} (week 1 warms the baseline up). Recall counts a fault detected when any of its
intervals has the field flagged; precision is the share of flagged (meter, interval) pairs that lie in a fault of that kind.
"Ours" counts warning and critical anomalies (what operators are alerted on), and the statistical findings that
continue an episode (stored as info: one warning per episode, `monitoring/detection/episodes.py`, but each flags its
interval); the "all severities" column adds the informational statistical load flags.

| kind | faults | recall (ours) | precision (ours) | precision (ours, all severities) | recall (reference) | precision (reference) | flags ours / reference |
|---|---|---|---|---|---|---|---|
{table}

Reference = the MongoDB solution's method: the last 12 readings including the new one, population sigma, 3 sigma. With 12
values one outlier can be at most 11/sqrt(12) = 3.18 sigma from the mean, and a two-interval fault never reaches 3 sigma.

Outages, the last day replayed minute by minute through the outage service ({outage["outages"]} outages, including a feeder-wide
one on det-f00 from {FEEDER_OUTAGE[0]:%H:%M} to {FEEDER_OUTAGE[1]:%H:%M} UTC where every other meter's last gasp is lost):
- worst delay from outage start to the meter being in an incident, last gasp received: {outage["worst_last_gasp_delay_intervals"]} intervals
  (the replay's step is one minute, 0.07 interval; the job itself runs every 5 s); outages missed: {outage["missed_with_last_gasp"]};
- worst delay for any meter, including those whose last gasp was lost (found silent after one missed interval and
  joined to their feeder's open incident; a meter silent on its own needs MONITORING_SILENT_INTERVALS=2 and a
  silent neighbour): {outage["worst_meter_delay_intervals"]} intervals (this is `outage_detect_intervals`);
- the feeder-wide outage: {outage["feeder_incidents"]} incident(s) opened during it, the largest with {outage["feeder_incident_meters"]} of {outage["feeder_meters"]} meters, opened
  {outage["feeder_incident_delay_intervals"]} intervals after it began;
- incidents: {outage["incidents"]}, of which {outage["spurious_incidents"]} without an outage behind them (ordinary load swings raise none);
  still open at the end of the replay: {outage["open_at_end"]}.

Detection job throughput: {rate:,.0f} readings/s over the last day judged in 15-minute batches of {METERS:,} meters
({live_scanned:,} readings; the baselines were rebuilt beforehand as the nightly job does, in {rebuild_s:.0f} s for
{METERS:,} meters), while another process wrote {ingest_rate:,.0f} readings/s
into the same collection (insert_readings, batches of 500: the ingest's write load, not the MQTT worker). Weeks judged a week
at a time: {history_scanned / history_s:,.0f} readings/s.
""",
    )
    return results
