"""The simulator against the real broker: meters log in with their own credentials, backfill a day
in interval blocks, and answer on-demand reads.

The broker on 1884 is shared and persistent: meters get serials of their own and their broker
accounts are deleted after each test.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingest.simulator.faults import LabelWriter
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from ingest.simulator.runner import Fleet, run_realtime
from mdms.core.mqtt import broker, topics
from mdms.core.mqtt import client as mqtt_client
from mdms.core.mqtt.topics import Kind
from mdms.core.testing import Person, broker_accounts_delete, make_consumer

WAIT_S = 10.0


class Watcher:
    """The admin account, subscribed to plain meter topics, collecting what arrives."""

    def __init__(self) -> None:
        username, password = mqtt_client.admin_credentials()
        self.client = mqtt_client.new_client(
            client_id=f"test-sim-watch-{uuid.uuid4().hex[:6]}", username=username, password=password
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[Any] = queue.Queue()
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.on_message = lambda c, u, message: self.messages.put(message)
        self.client.on_subscribe = lambda c, u, mid, reasons, props: self.acks.put(list(reasons))
        self.client.on_publish = lambda c, u, mid, reason, props: self.acks.put([reason])
        mqtt_client.connect(self.client)
        self.client.loop_start()
        assert connected.wait(WAIT_S)

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert not any(reason.is_failure for reason in self.acks.get(timeout=WAIT_S))

    def collect(self, *, until: Callable[[list[mqtt.MQTTMessage]], bool], within_s: float = WAIT_S) -> list[Any]:
        seen: list[mqtt.MQTTMessage] = []
        deadline = dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=within_s)
        while not until(seen):
            left = (deadline - dt.datetime.now(tz=dt.UTC)).total_seconds()
            if left <= 0:
                break
            try:
                seen.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def watcher() -> Iterator[Watcher]:
    opened = Watcher()
    yield opened
    opened.close()


@pytest.fixture
def meters(db: None, django_capture_on_commit_callbacks: Any) -> Iterator[list[Person]]:
    """Two consumers whose meters have broker accounts (the registration hooks run on commit)."""
    tag = uuid.uuid4().hex[:6]
    with django_capture_on_commit_callbacks(execute=True):
        people = [make_consumer(f"sim{tag}a"), make_consumer(f"sim{tag}b", has_solar=True)]
    yield people
    broker_accounts_delete(people)


def credentials_file(path: Path, people: list[Person]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["serial", "password"])
        writer.writerows([person.meter.serial, person.mqtt_password] for person in people)
    return path


def test_a_day_backfill_arrives_as_one_block_of_96_readings_per_meter(
    meters: list[Person], watcher: Watcher, tmp_path: Path
) -> None:
    for person in meters:
        watcher.subscribe(topics.topic(person.meter.serial, Kind.READINGS))
    out = StringIO()
    call_command(
        "simulate_meters",
        "--credentials",
        str(credentials_file(tmp_path / "meters.csv", meters)),
        "--from",
        "2026-03-02",
        "--to",
        "2026-03-03",
        "--labels",
        str(tmp_path / "labels.jsonl"),
        "--no-progress",
        stdout=out,
    )
    assert "2 of 2 meters connected (2 known to the registry)" in out.getvalue()
    messages = watcher.collect(until=lambda seen: len(seen) >= 2)
    blocks = {topics.parse(m.topic)[0]: json.loads(m.payload) for m in messages}  # type: ignore[index]
    assert set(blocks) == {person.meter.serial for person in meters}
    for block in blocks.values():
        assert len(block) == 96
        # Local days in Europe/Paris: 2 March 00:00 is 1 March 23:00 UTC.
        assert block[0]["ts"] == "2026-03-01T23:15:00Z"
        assert block[-1]["ts"] == "2026-03-02T23:00:00Z"
        assert block[-1]["register_import_kwh"] == pytest.approx(
            block[0]["register_import_kwh"] + sum(r["energy_import_kwh"] for r in block[1:]), abs=1e-6
        )
    assert (tmp_path / "labels.jsonl").read_text() == ""  # no faults asked for
    assert watcher.collect(until=lambda seen: False, within_s=0.5) == []  # nothing more


def test_faults_reach_the_broker_and_the_label_file(meters: list[Person], watcher: Watcher, tmp_path: Path) -> None:
    serial = meters[0].meter.serial
    watcher.subscribe(topics.topic(serial, Kind.EVENTS))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"faults:\n  - {{serial: {serial}, kind: outage, start: '2026-03-02T10:05:00Z', end: '2026-03-02T11:20:00Z'}}\n"
    )
    call_command(
        "simulate_meters",
        "--credentials",
        str(credentials_file(tmp_path / "meters.csv", meters[:1])),
        "--from",
        "2026-03-02T00:00:00Z",
        "--to",
        "2026-03-03T00:00:00Z",
        "--faults",
        str(plan),
        "--labels",
        str(tmp_path / "labels.jsonl"),
        "--no-progress",
        stdout=StringIO(),
    )
    events = [json.loads(m.payload) for m in watcher.collect(until=lambda seen: len(seen) >= 2)]
    assert [(e["type"], e["ts"]) for e in events] == [
        ("power_off", "2026-03-02T10:05:00Z"),
        ("power_on", "2026-03-02T11:20:00Z"),
    ]
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [(label["serial"], label["kind"], label["start"], label["end"]) for label in labels] == [
        (serial, "outage", "2026-03-02T10:05:00Z", "2026-03-02T11:20:00Z")
    ]


def test_a_meter_answers_an_on_demand_read_with_its_registers(meters: list[Person], watcher: Watcher) -> None:
    person = meters[0]
    serial = person.meter.serial
    meter = SimulatedMeter(profile_for(serial, seed=1, has_solar=False), 1)
    fleet = Fleet([meter], {serial: person.mqtt_password})
    assert [link.meter.serial for link in fleet.connect(timeout_s=WAIT_S)] == [serial]
    stop = threading.Event()
    worker = threading.Thread(
        target=run_realtime, kwargs={"fleet": fleet, "labels": LabelWriter(None), "should_stop": stop.is_set}
    )
    worker.start()
    try:
        watcher.subscribe(topics.topic(serial, Kind.REPLIES))
        # The ingest account is the one allowed to send commands; make sure it exists.
        broker.ensure_ingest_account()
        username, password = mqtt_client.ingest_credentials()
        sender = mqtt_client.new_client(
            client_id=f"test-sim-cmd-{uuid.uuid4().hex[:6]}", username=username, password=password
        )
        acked: queue.Queue[Any] = queue.Queue()
        sender.on_publish = lambda c, u, mid, reason, props: acked.put(reason)
        mqtt_client.connect(sender)
        sender.loop_start()
        sender.publish(topics.topic(serial, Kind.COMMANDS), json.dumps({"id": "read-1", "type": "read"}), qos=1)
        assert not acked.get(timeout=WAIT_S).is_failure
        replies = watcher.collect(until=lambda seen: len(seen) >= 2)
        sender.disconnect()
        sender.loop_stop()
    finally:
        stop.set()
        worker.join(WAIT_S)
        fleet.close()
    # The meter acknowledges the command, then answers it (docs/commands.md).
    acknowledgement, reply = (json.loads(message.payload) for message in replies)
    assert (acknowledgement["id"], acknowledgement["status"]) == ("read-1", "acknowledged")
    assert (reply["id"], reply["status"]) == ("read-1", "completed")
    assert reply["register_import_kwh"] == meter.profile.initial_register_import_kwh
    assert reply["register_export_kwh"] == 0.0
    assert dt.datetime.fromisoformat(reply["ts"].replace("Z", "+00:00")) <= dt.datetime.now(tz=dt.UTC)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--credentials", "/nonexistent/meters.csv"], "not found"),
        (["--speed", "max"], "needs --from"),
        (["--speed", "realtime", "--from", "2026-01-01"], "real time starts now"),
        (["--from", "2026-01-02", "--to", "2026-01-01"], "must come before"),
        (["--interval-s", "7"], "must divide a day"),
        (["--faults", "/nonexistent/plan.yaml", "--from", "2026-01-01"], "--faults"),
    ],
)
def test_the_command_refuses_bad_options_with_a_reason(arguments: list[str], message: str, tmp_path: Path) -> None:
    credentials = tmp_path / "meters.csv"
    credentials.write_text("serial,password\nX1,pw\n")
    if "--credentials" not in arguments:
        arguments = ["--credentials", str(credentials), *arguments]
    with pytest.raises(CommandError, match=message):
        call_command("simulate_meters", *arguments, stdout=StringIO())


def test_real_time_sends_one_reading_per_interval_end(meters: list[Person], watcher: Watcher) -> None:
    person = meters[1]
    serial = person.meter.serial
    watcher.subscribe(topics.topic(serial, Kind.READINGS))
    fleet = Fleet([SimulatedMeter(profile_for(serial, seed=2, has_solar=True), 2)], {serial: person.mqtt_password})
    assert fleet.connect(timeout_s=WAIT_S)
    # A clock where a wall second is a simulated quarter of an hour.
    origin, started = dt.datetime(2026, 6, 1, 11, 50, tzinfo=dt.UTC), time.monotonic()
    stop = threading.Event()
    worker = threading.Thread(
        target=run_realtime,
        kwargs={
            "fleet": fleet,
            "labels": LabelWriter(None),
            "should_stop": stop.is_set,
            "now": lambda: origin + dt.timedelta(seconds=(time.monotonic() - started) * 900),
        },
    )
    worker.start()
    try:
        received = watcher.collect(until=lambda seen: len(seen) >= 3, within_s=8.0)
    finally:
        stop.set()
        worker.join(WAIT_S)
        fleet.close()
    readings = [json.loads(message.payload) for message in received]
    assert [reading["ts"] for reading in readings] == [
        "2026-06-01T12:00:00Z",
        "2026-06-01T12:15:00Z",
        "2026-06-01T12:30:00Z",
    ]
    assert all(isinstance(reading, dict) for reading in readings)  # one object per message, not a block


def test_a_history_through_the_pipeline_then_real_time_over_the_broker(
    meters: list[Person], watcher: Watcher, tmp_path: Path, mongo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make run's meters: the history stored in bulk (ingest.simulator.history), not published; then the
    same meters connect and go on over MQTT, their state saved for a restart."""
    from ingest.simulator import history
    from mdms.core.timeseries import ROLLUPS_DAILY, collection
    from mdms.core.timeseries import readings as store

    judged: list[tuple[list[int], dt.datetime]] = []
    monkeypatch.setattr(history, "judge_recent", lambda pks, *, end: judged.append((list(pks), end)))
    for person in meters:
        watcher.subscribe(topics.topic(person.meter.serial, Kind.READINGS))
    out, state = StringIO(), tmp_path / "state.json"

    def stop_once_connected() -> None:  # the command stops on SIGINT, as under the supervisor
        deadline = time.monotonic() + 60
        while "meters connected" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    stopper = threading.Thread(target=stop_once_connected)
    stopper.start()
    call_command(
        "simulate_meters", "--credentials", str(credentials_file(tmp_path / "meters.csv", meters)),
        "--backfill-days", "3", "--backfill-via", "pipeline", "--history-workers", "1", "--state", str(state),
        "--no-progress", stdout=out,
    )  # fmt: skip
    stopper.join()
    said = out.getvalue()
    assert "history: " in said and "2 of 2 meters connected" in said
    pks = sorted(person.meter.pk for person in meters)
    # Three days of each meter stored (about 288 intervals) and rolled up, not published: over the broker
    # come only the intervals that ended since (none, or one if a quarter of an hour ended meanwhile).
    for pk in pks:
        assert 285 <= store.count_distinct_readings([pk]) <= 289
        assert collection(ROLLUPS_DAILY).count_documents({"meter": pk}) >= 3
    assert len(watcher.collect(until=lambda seen: False, within_s=0.5)) <= len(meters)
    assert [sorted(p) for p, _end in judged] == [pks]
    saved = json.loads(state.read_text())
    assert set(saved) == {person.meter.serial for person in meters}
    assert all(entry["made_until"] for entry in saved.values())
