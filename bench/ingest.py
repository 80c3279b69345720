"""Ingest throughput: publish to stored, against the ceilings measured in the same run.

Measured, all on this machine with the broker, MongoDB, the publisher and the worker on it:
- the broker's own ceiling: the same publisher to a trivial QoS 1 subscriber that only counts;
- MongoDB's insert_many ceiling for the same documents (batches of 5,000, unordered);
- the reference solution's naive approach: one insert_one per message;
- the ingest worker (`celery -A mdms worker --ingest`, a subprocess) with one reading per
  message for 10,000 meters, and with interval blocks of 96 readings per message.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings

from bench.common import ROOT, progress, save_results, save_section
from bench.mqtt_wire import CountingSubscriber, FastPublisher
from ingest import counters, parsing
from mdms.core import timeseries
from mdms.core.models import Meter
from mdms.core.mqtt import broker, topics
from mdms.core.timeseries import readings as stored

METERS = 10_000
SINGLE_MESSAGES = 100_000  # 10 intervals for each of 10,000 meters
SINGLE_STEPS = SINGLE_MESSAGES // METERS
BLOCK_MESSAGES = 2_500  # x 96 readings = 240,000 readings
BLOCK = 96
NAIVE_SAMPLE = 20_000
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
_PROBES = itertools.count(1)


def ensure_meters(count: int) -> list[tuple[int, str]]:
    """count active meters BENCH000001..., created in bulk (the bench publishes as a HES)."""
    existing = Meter.objects.filter(serial__startswith="BENCH").count()
    if existing < count:
        Meter.objects.bulk_create(
            [Meter(serial=f"BENCH{n:06d}", status=Meter.Status.ACTIVE) for n in range(existing + 1, count + 1)],
            batch_size=2000,
        )
    return list(Meter.objects.filter(serial__startswith="BENCH").order_by("serial").values_list("pk", "serial"))[:count]


def reading(n: int, ts: dt.datetime) -> dict[str, Any]:
    energy = 0.1 + (n % 17) * 0.03
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "interval_s": 900,
        "energy_import_kwh": round(energy, 4),
        "energy_export_kwh": 0.0,
        "register_import_kwh": round(10_000 + n * 0.25, 3),
        "power_w": round(energy * 4000, 1),
        "voltage_v": 230.0 + (n % 7) * 0.4,
        "current_a": round(energy * 4000 / 230 / 0.95, 3),
        "frequency_hz": 50.0,
        "power_factor": 0.95,
    }


def single_messages(serials: list[str], count: int, offset: int = 0) -> Iterator[tuple[str, bytes]]:
    for i in range(count):
        step = offset + i // len(serials)
        serial = serials[i % len(serials)]
        yield (
            topics.topic(serial, topics.Kind.READINGS),
            json.dumps(reading(i, START + dt.timedelta(minutes=15 * (step + 1)))).encode(),
        )


def block_messages(serials: list[str], count: int, offset_days: int = 30) -> Iterator[tuple[str, bytes]]:
    for i in range(count):
        serial = serials[i % len(serials)]
        day = offset_days + i // len(serials)
        day_start = START + dt.timedelta(days=day)
        block = [reading(i * BLOCK + k, day_start + dt.timedelta(minutes=15 * (k + 1))) for k in range(BLOCK)]
        yield topics.topic(serial, topics.Kind.READINGS), json.dumps(block).encode()


HES_USERNAME = "bench-hes"
HES_ROLE = "bench-hes"
_hes_password: list[str] = []


def hes_credentials() -> tuple[str, str]:
    """A head-end-system account of the bench's own: it may publish readings for every meter (and
    subscribe to them, for the broker ceiling). The administrator account may not: the broker
    acknowledges its publishes and drops them (the default ACL denies). A new password each run."""
    if not _hes_password:
        password = uuid.uuid4().hex
        acls = [
            {"acltype": "publishClientSend", "topic": topics.wildcard(topics.Kind.READINGS), "priority": 0, "allow": True},
            {"acltype": "subscribePattern", "topic": topics.wildcard(topics.Kind.READINGS), "priority": 0, "allow": True},
        ]  # fmt: skip
        with broker.admin_session() as admin:
            admin.run_checked(
                [{"command": "createRole", "rolename": HES_ROLE, "acls": acls}],
                tolerated=frozenset({"Role already exists"}),
            )
            admin.run_checked(
                [{"command": "createClient", "username": HES_USERNAME, "password": password,
                  "roles": [{"rolename": HES_ROLE, "priority": 0}]}],
                tolerated=frozenset({"Client already exists"}),
            )  # fmt: skip
            admin.run_checked([{"command": "setClientPassword", "username": HES_USERNAME, "password": password}])
        _hes_password.append(password)
    return HES_USERNAME, _hes_password[0]


def new_publisher(tag: str) -> FastPublisher:
    username, password = hes_credentials()
    return FastPublisher(
        settings.MQTT_HOST, settings.MQTT_PORT, f"bench-pub-{tag}-{uuid.uuid4().hex[:6]}", username, password
    )


def mqtt_ceiling(messages: list[tuple[str, bytes]]) -> float:
    """The publisher to a subscriber that only counts and acknowledges (QoS 1 both ways): the broker's ceiling."""
    username, password = hes_credentials()
    subscriber = CountingSubscriber(
        settings.MQTT_HOST,
        settings.MQTT_PORT,
        f"bench-sub-{uuid.uuid4().hex[:6]}",
        username,
        password,
        topics.wildcard(topics.Kind.READINGS),
    )
    publisher = new_publisher("ceiling")
    encoded = publisher.encode(messages)
    started = time.perf_counter()
    publisher.send(encoded)
    subscriber.wait_received(len(messages))
    elapsed = time.perf_counter() - started
    received = subscriber.received
    publisher.close()
    subscriber.close()
    return received / elapsed


def documents_for(messages: list[tuple[str, bytes]], pk_by_serial: dict[str, int]) -> list[dict[str, Any]]:
    now = dt.datetime.now(tz=dt.UTC)
    docs = []
    for topic_name, payload in messages:
        serial = topic_name.split("/")[1]
        for r in parsing.parse_readings(payload, serial=serial, now=now).readings:
            docs.append(
                stored.reading_document(
                    meter_pk=pk_by_serial[serial], ts=r.ts, received_at=now, values=r.values, interval_s=r.interval_s
                )
            )
    return docs


def scratch_timeseries(name: str) -> Any:
    database = timeseries.db()
    database.drop_collection(name)
    database.create_collection(name, timeseries={"timeField": "ts", "metaField": "meter", "granularity": "minutes"})
    return database[name]


def mongo_insert_many_ceiling(docs: list[dict[str, Any]], batch: int = 5000) -> float:
    """insert_many of the same documents, in the worker's batch size, sorted by (meter, ts) in each batch."""
    target = scratch_timeseries("bench_ceiling")
    docs = [dict(d) for d in docs]
    started = time.perf_counter()
    for i in range(0, len(docs), batch):
        target.insert_many(sorted(docs[i : i + batch], key=lambda d: (d["meter"], d["ts"])), ordered=False)
    rate = len(docs) / (time.perf_counter() - started)
    timeseries.db().drop_collection("bench_ceiling")
    return rate


def naive_insert_one(docs: list[dict[str, Any]]) -> float:
    target = scratch_timeseries("bench_naive")
    started = time.perf_counter()
    for d in docs:
        target.insert_one(dict(d))
    rate = len(docs) / (time.perf_counter() - started)
    timeseries.db().drop_collection("bench_naive")
    return rate


def start_workers(count: int) -> list[subprocess.Popen[bytes]]:
    """`count` ingest workers (each its own process and broker session, on the shared subscription)."""
    workers = []
    for n in range(count):
        # In the shared group, as when scaled out (docs/scaling.md): the two-worker run splits the stream,
        # and a stopped worker ends its session instead of leaving it to queue the next run's messages.
        env = dict(
            os.environ, INGEST_CLIENT_ID=f"bench-ingest-{uuid.uuid4().hex[:6]}", INGEST_SHARE_GROUP=topics.SHARE_GROUP
        )
        log = open(ROOT / "var" / "log" / f"bench-ingest-{n}.log", "wb")  # noqa: SIM115 - lives as long as the worker
        command = [sys.executable, "-m", "celery", "-A", "mdms", "worker", "--ingest", "-P", "solo", "-Q",
                   "bench-ingest", "-n", f"bench-ingest-{uuid.uuid4().hex[:6]}@%h", "-l", "WARNING"]  # fmt: skip
        workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    # Ready when probe readings published now are stored: the shared subscription routes a message
    # to one member, so probes go on until every worker has had time to subscribe.
    probe_serial = Meter.objects.filter(serial__startswith="BENCH").values_list("serial", flat=True).first()
    assert probe_serial
    publisher = new_publisher("probe")
    deadline = time.monotonic() + 60
    before = stored_count()
    while time.monotonic() < deadline:
        # Each probe is a reading of its own (an exact copy would be dropped as a duplicate),
        # before START, outside every measured window.
        probe_ts = START - dt.timedelta(minutes=15 * next(_PROBES))
        publisher.send(
            publisher.encode(
                [(topics.topic(probe_serial, topics.Kind.READINGS), json.dumps(reading(0, probe_ts)).encode())]
            )
        )
        time.sleep(0.5)
        if stored_count() >= before + count:
            break
    publisher.close()
    time.sleep(2)  # the last probes stored, and every worker subscribed
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(60)


def stored_count(first: dt.datetime | None = None, last: dt.datetime | None = None) -> int:
    """Stored copies (duplicates included), all or with first < ts <= last."""
    query = {} if first is None or last is None else {"ts": {"$gt": first, "$lte": last}}
    return int(timeseries.collection(timeseries.READINGS).count_documents(query))


def distinct_readings(first: dt.datetime | None = None, last: dt.datetime | None = None) -> int:
    """Distinct (meter, ts) stored, all or with first < ts <= last."""
    match = {} if first is None or last is None else {"ts": {"$gt": first, "$lte": last}}
    result = list(
        timeseries.collection(timeseries.READINGS).aggregate(
            [{"$match": match}, {"$group": {"_id": {"m": "$meter", "t": "$ts"}}}, {"$count": "n"}], allowDiskUse=True
        )
    )
    return int(result[0]["n"]) if result else 0


def stored_by_workers() -> int:
    """Readings the workers report stored (their Redis counter, added to after each insert)."""
    return int(counters.snapshot()["stored"])


def worker_throughput(
    messages: list[tuple[str, bytes]], expected_readings: int, label: str, window: tuple[dt.datetime, dt.datetime]
) -> tuple[float, int]:
    """Publish everything, time from the first publish until every reading is stored; (readings/s, lost).

    The clock stops when the workers' own counter (bumped after each insert_many returns) has grown
    by the readings sent: polling MongoDB instead would take a share of the very CPU being measured.
    Then, off the clock, MongoDB decides: lost is the readings sent minus the distinct (meter, ts)
    stored with ts in `window` (first < ts <= last), after a quiet wait for stragglers.
    """
    first, last = window
    publisher = new_publisher(label)
    encoded = publisher.encode(messages)
    sender = threading.Thread(target=publisher.send, args=(encoded,), name="bench-publisher")
    before = stored_by_workers()
    deadline = time.monotonic() + 900
    started = time.perf_counter()
    sender.start()
    stored_now = 0
    last_shown = 0.0
    while time.monotonic() < deadline:
        stored_now = stored_by_workers() - before
        if stored_now >= expected_readings:
            break
        if time.monotonic() - last_shown > 0.5:
            progress(f"  {label}: stored", stored_now, expected_readings)
            last_shown = time.monotonic()
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    progress(f"  {label}: stored", stored_now, expected_readings)
    sender.join()
    publisher.close()
    distinct = distinct_readings(first, last)
    return min(distinct, stored_now) / elapsed, max(0, expected_readings - distinct)


def run() -> dict[str, Any]:
    print("ingest: preparing 10,000 meters and the messages")
    broker.ensure_ingest_account()
    pairs = ensure_meters(METERS)
    serials = [s for _, s in pairs]
    pk_by_serial = {s: pk for pk, s in pairs}
    timeseries.db().drop_collection(timeseries.READINGS)
    timeseries.ensure_collections()

    singles = list(single_messages(serials, SINGLE_MESSAGES))
    blocks = list(block_messages(serials, BLOCK_MESSAGES))
    block_readings = BLOCK_MESSAGES * BLOCK

    print("ingest: broker ceiling (trivial QoS 1 subscriber)")
    mqtt_ceiling_single = mqtt_ceiling(singles)
    mqtt_ceiling_block = mqtt_ceiling(blocks) * BLOCK
    print("ingest: MongoDB insert_many ceiling and naive insert_one")
    block_docs = documents_for(blocks, pk_by_serial)
    mongo_ceiling = mongo_insert_many_ceiling(block_docs)
    # One reading per message: each batch holds one reading for each of thousands of meters, so
    # every document lands in a bucket of its own, a costlier write than a block's 96 in one.
    mongo_ceiling_single = mongo_insert_many_ceiling(documents_for(singles, pk_by_serial))
    naive = naive_insert_one(documents_for(singles[:NAIVE_SAMPLE], pk_by_serial))

    print("ingest: the ingest worker, then two on the shared subscription")
    rates: dict[int, tuple[float, float]] = {}
    lost = 0
    for workers_count in (1, 2):
        # Each round sends readings of its own (later intervals), so none is a duplicate of the other's.
        round_ = workers_count - 1
        singles_round = singles if round_ == 0 else list(single_messages(serials, SINGLE_MESSAGES, offset=SINGLE_STEPS))
        blocks_round = blocks if round_ == 0 else list(block_messages(serials, BLOCK_MESSAGES, offset_days=31))
        step = dt.timedelta(minutes=15)
        single_window = (START + step * SINGLE_STEPS * round_, START + step * SINGLE_STEPS * (round_ + 1))
        block_day = START + dt.timedelta(days=30 + round_)
        workers = start_workers(workers_count)
        try:
            single_rate, single_lost = worker_throughput(singles_round, SINGLE_MESSAGES, "single", single_window)
            block_rate, block_lost = worker_throughput(
                blocks_round, block_readings, "block", (block_day, block_day + dt.timedelta(days=1))
            )
        finally:
            stop_workers(workers)
        rates[workers_count] = (single_rate, block_rate)
        lost += single_lost + block_lost
    single_rate, block_rate = rates[1]
    single_rate_2, block_rate_2 = rates[2]
    probe_and_sent = distinct_readings()

    results = {
        "ingest_single_readings_per_s": round(single_rate),
        "ingest_single_ceiling_mqtt_per_s": round(mqtt_ceiling_single),
        "ingest_single_ratio_to_ceiling": round(single_rate / mqtt_ceiling_single, 3),
        "ingest_single_ceiling_mongo_per_s": round(mongo_ceiling_single),
        "ingest_single_ratio_to_mongo_ceiling": round(single_rate / mongo_ceiling_single, 3),
        "ingest_block_readings_per_s": round(block_rate),
        "ingest_block_ceiling_mongo_per_s": round(mongo_ceiling),
        "ingest_block_ceiling_mqtt_readings_per_s": round(mqtt_ceiling_block),
        "ingest_block_ratio_to_ceiling": round(block_rate / mongo_ceiling, 3),
        "ingest_naive_insert_one_per_s": round(naive),
        "ingest_single_readings_per_s_2_workers": round(single_rate_2),
        "ingest_block_readings_per_s_2_workers": round(block_rate_2),
        "ingest_lost_readings": lost,
        "ingest_distinct_readings_stored": probe_and_sent,
        # Capacity: a meter at 15-minute intervals sends one reading every 900 s (a daily block of
        # 96 is the same readings a day), so one worker keeps up with readings/s x 900 meters.
        "ingest_meters_per_worker_15min_single": round(single_rate * 900, -3),
        "ingest_meters_per_worker_15min_block": round(block_rate * 900, -3),
    }
    save_results(results)
    save_section(
        "10-ingest",
        f"""
## Ingest (issue 3): publish to stored

10,000 meters; {SINGLE_MESSAGES:,} messages of one reading each, then {BLOCK_MESSAGES:,} interval blocks of
{BLOCK} readings ({block_readings:,} readings). QoS 1 end to end; the worker acknowledges a message only after its
batch is in MongoDB. Publisher, Mosquitto, MongoDB and the worker share the 2 cores.

| figure | readings/s | ceiling (same run) | ratio | goal |
|---|---:|---:|---:|---|
| one reading per message, 1 worker | {single_rate:,.0f} | broker, trivial QoS 1 subscriber: {mqtt_ceiling_single:,.0f} | {single_rate / mqtt_ceiling_single:.2f} | ≥ 10,000 |
| one reading per message, 1 worker | {single_rate:,.0f} | MongoDB insert_many, same documents: {mongo_ceiling_single:,.0f} | {single_rate / mongo_ceiling_single:.2f} | ≥ 10,000 |
| blocks of 96 readings, 1 worker | {block_rate:,.0f} | MongoDB insert_many: {mongo_ceiling:,.0f} | {block_rate / mongo_ceiling:.2f} | ≥ 60,000 |
| one reading per message, 2 workers | {single_rate_2:,.0f} | broker: {mqtt_ceiling_single:,.0f} | {single_rate_2 / mqtt_ceiling_single:.2f} | ≥ 10,000 |
| blocks of 96 readings, 2 workers | {block_rate_2:,.0f} | MongoDB: {mongo_ceiling:,.0f} | {block_rate_2 / mongo_ceiling:.2f} | ≥ 60,000 |
| blocks, broker alone | {mqtt_ceiling_block:,.0f} | | | |
| reference solution's insert_one per message | {naive:,.0f} | MongoDB insert_many: {mongo_ceiling:,.0f} | {naive / mongo_ceiling:.2f} | |

- The publisher is a plain-socket MQTT 3.1.1 client (`bench/mqtt_wire.py`) that encodes every message
  before the clock starts; the broker ceiling uses it with a subscriber that only counts and
  acknowledges. (A paho publisher topped out near 3,300 messages/s on this machine, measuring itself.)
- Capacity at 15-minute intervals (readings/s times 900 s), one worker: **{round(single_rate * 900, -3):,.0f}** meters
  sending each reading as it is measured, **{round(block_rate * 900, -3):,.0f}** meters sending daily blocks of 96;
  two workers: {round(single_rate_2 * 900, -3):,.0f} and {round(block_rate_2 * 900, -3):,.0f}. Plan at half of that, for
  catch-up after an outage; the followers (rollups, detection) must keep up too (see detection below).
- On these 2 cores a second worker takes CPU from MongoDB, which is the dearer half of storing one reading
  per message (each reading lands in a bucket of its own): two workers pay off on a machine with cores to
  spare, or with MongoDB on its own machine.
- Readings lost: **{lost}** (sent minus distinct (meter, ts) stored, over all four runs).
- Load average when the run ended: {os.getloadavg()[0]:.2f} (other work on the machine skews the figures).
- Storage on disk is measured on a month of realistic data in its own section (`python -m bench storage`).
""",
    )
    return results
