"""The MQTT consumer against the real broker and MongoDB: meters publish, the worker stores."""

from __future__ import annotations

import datetime as dt
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
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest import counters
from ingest.testing import RunningWorker, drop_session, wait_for
from ingest.worker import IngestWorker
from mdms.config import BASE_DIR
from mdms.core.mqtt import broker, topics
from mdms.core.mqtt.client import connect, new_client
from mdms.core.roles import Role
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as store

# transaction=True: registrations commit, so the broker hook gives each meter its account and the
# worker's own connection sees it.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Meter:
    """A registered meter publishing over MQTT with its own credentials."""

    def __init__(self, person: Any) -> None:
        self.serial = person.meter.serial
        self.pk = person.meter.pk
        self.client = new_client(
            client_id=f"{self.serial}-{uuid.uuid4().hex[:6]}", username=self.serial, password=person.mqtt_password
        )
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, reason, p: self.connected.set() if not reason.is_failure else None
        connect(self.client)
        self.client.loop_start()
        assert self.connected.wait(10), "the broker refused the meter"

    def publish(self, payload: bytes | str | Any, kind: topics.Kind = topics.Kind.READINGS) -> mqtt.MQTTMessageInfo:
        raw = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        return self.client.publish(topics.topic(self.serial, kind), raw, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def reading(i: int) -> dict[str, Any]:
    return {
        "ts": (T0 + dt.timedelta(minutes=15 * i)).isoformat(),
        "interval_s": 900,
        "energy_import_kwh": round(0.001 * i, 3),
    }


@pytest.fixture
def ingest_account() -> None:
    broker.ensure_ingest_account()


@pytest.fixture
def meter(ingest_account: None, mongo: Any) -> Iterator[Meter]:
    # A transactional test starts from empty tables, without the role groups the migrations made.
    for role in Role:
        Group.objects.get_or_create(name=role.value)
    m = Meter(make_consumer(f"m{uuid.uuid4().hex[:6]}"))
    yield m
    m.close()


@pytest.fixture
def worker(ingest_account: None, mongo: Any) -> Iterator[IngestWorker]:
    running = RunningWorker("test-ingest", session_expiry_s=60)
    yield running.worker
    running.stop(timeout=10)
    drop_session(running.worker.client_id)


def test_numbered_stream_published_with_qos1_is_fully_stored(worker: IngestWorker, meter: Meter) -> None:
    infos = [meter.publish(reading(i)) for i in range(500)]
    for info in infos:
        info.wait_for_publish(10)
    wait_for(lambda: store.count_distinct_readings([meter.pk]) == 500, what="500 readings")
    rows = store.readings_for_meter(meter.pk, None, None)
    assert [r["energy_import_kwh"] for r in rows] == [round(0.001 * i, 3) for i in range(500)]
    assert store.count_stored_readings([meter.pk]) == 500


def test_readings_published_with_mqtt5_properties_are_stored_like_those_without(
    worker: IngestWorker, meter: Meter
) -> None:
    # The worker's client decodes a PUBLISH without properties itself and hands one with properties
    # to paho (BulkReceiveClient): both roads end in the same store, acknowledged.
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "application/json"
    properties.UserProperty = [("source", "head-end")]
    topic = topics.topic(meter.serial, topics.Kind.READINGS)
    infos = [
        meter.client.publish(topic, json.dumps(reading(i)), qos=1, properties=properties if i % 2 else None)
        for i in range(40)
    ]
    for info in infos:
        info.wait_for_publish(10)
    wait_for(lambda: store.count_distinct_readings([meter.pk]) == 40, what="40 readings")
    rows = store.readings_for_meter(meter.pk, None, None)
    assert [r["energy_import_kwh"] for r in rows] == [round(0.001 * i, 3) for i in range(40)]


def test_resending_the_same_readings_changes_nothing_the_reads_return(worker: IngestWorker, meter: Meter) -> None:
    meter.publish([reading(i) for i in range(20)]).wait_for_publish(10)
    wait_for(lambda: store.count_distinct_readings([meter.pk]) == 20, what="20 readings")
    before = store.readings_for_meter(meter.pk, None, None)
    duplicates = counters.snapshot()["duplicates"]
    for _ in range(3):
        meter.publish([reading(i) for i in range(20)]).wait_for_publish(10)
    wait_for(lambda: counters.snapshot()["duplicates"] - duplicates >= 60, what="60 duplicates counted")
    after = store.readings_for_meter(meter.pk, None, None)
    strip = [{k: v for k, v in r.items() if k != "received_at"} for r in after]
    assert strip == [{k: v for k, v in r.items() if k != "received_at"} for r in before]
    assert store.count_stored_readings([meter.pk]) == 20


def test_serial_in_payload_differing_from_topic_is_dead_lettered(worker: IngestWorker, meter: Meter) -> None:
    meter.publish({**reading(1), "meter_id": "SOMEONE-ELSE"}).wait_for_publish(10)
    wait_for(
        lambda: store.dead_letters_by_reason(serial=meter.serial) == {"serial_mismatch": 1}, what="the dead letter"
    )
    assert store.count_stored_readings([meter.pk]) == 0


future = dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=1)
garbage = st.one_of(
    st.binary(max_size=64).filter(lambda b: not b.strip().startswith((b"{", b"["))),
    st.builds(
        lambda v: {"ts": T0.isoformat(), "power_w": v},
        st.one_of(st.booleans(), st.lists(st.integers(), max_size=2), st.text(alphabet="abcxyz", min_size=1)),
    ),
    st.just('{"ts": "2026-01-01T00:00:00Z", "power_w": NaN}'),
    st.builds(lambda v: {"ts": T0.isoformat(), "power_w": v}, st.integers(min_value=10**7, max_value=10**30)),
    st.builds(lambda d: {"ts": (future + dt.timedelta(days=d)).isoformat(), "power_w": 1}, st.integers(0, 3000)),
)


@hypothesis_settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads=st.lists(garbage, min_size=20, max_size=40))
def test_garbage_payloads_end_in_dead_letters_and_the_worker_keeps_running(
    worker: IngestWorker, meter: Meter, payloads: list[Any]
) -> None:
    # Other meters' traffic may reach this worker too (the share group is the broker's): count ours.
    before = store.dead_letters_by_reason(serial=meter.serial)
    for payload in payloads:
        meter.publish(payload).wait_for_publish(10)
    sentinel = reading(len(payloads) + store.count_distinct_readings([meter.pk]))
    meter.publish(sentinel).wait_for_publish(10)
    total_before = sum(before.values())
    wait_for(
        lambda: sum(store.dead_letters_by_reason(serial=meter.serial).values()) - total_before == len(payloads),
        what="dead letters",
    )
    wait_for(
        lambda: any(
            r["energy_import_kwh"] == sentinel["energy_import_kwh"]
            for r in store.readings_for_meter(meter.pk, None, None)
        ),
        what="the sentinel reading",
    )
    letters = [letter for letter in store.recent_dead_letters(1000) if letter["serial"] == meter.serial]
    assert all(letter["reason_code"] and letter["reason"] and letter["topic"] for letter in letters)


def subprocess_env() -> dict[str, str]:
    """Environment pointing a child process at this test's PostgreSQL and MongoDB databases."""
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    parts = urlsplit(settings.MONGODB_URI)
    mongodb_uri = urlunsplit((parts.scheme, parts.netloc, f"/{settings.MONGODB_DB}", parts.query, parts.fragment))
    return {**os.environ, "DATABASE_URL": database_url, "MONGODB_URI": mongodb_uri, "PYTHONUNBUFFERED": "1"}


def start_worker_process(client_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "ingest_worker", "--client-id", client_id, "--flush-interval", "0.05"],
        cwd=BASE_DIR,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_kill_9_mid_stream_then_restart_stores_every_reading_exactly_once(meter: Meter) -> None:
    client_id = f"test-ingest-{uuid.uuid4().hex[:8]}"
    total = 3000
    process = start_worker_process(client_id)
    try:
        wait_for(lambda: process.stdout is not None and b"starting" in process.stdout.readline(), 20, "the worker")
        time.sleep(1.0)  # let it subscribe
        infos = [meter.publish(reading(i)) for i in range(total // 2)]
        wait_for(lambda: store.count_distinct_readings([meter.pk]) > 200, what="some readings stored")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        # The rest arrives while no worker is connected: the broker queues it in the session.
        infos += [meter.publish(reading(i)) for i in range(total // 2, total)]
        for info in infos:
            info.wait_for_publish(20)
        stored_while_dead = store.count_distinct_readings([meter.pk])
        assert stored_while_dead < total
        process = start_worker_process(client_id)
        wait_for(lambda: store.count_distinct_readings([meter.pk]) == total, 60, f"{total} readings")
        rows = store.readings_for_meter(meter.pk, None, None)
        assert [r["ts"] for r in rows] == [T0 + dt.timedelta(minutes=15 * i) for i in range(total)]
        time.sleep(0.5)  # any redelivered tail has been processed
        assert store.count_stored_readings([meter.pk]) == total
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        drop_session(client_id)
