"""Meter registration gives MQTT credentials; the real broker enforces them and the per-meter ACLs.

The broker on 1884 is shared and persistent: every test uses serials of its own and deletes the
broker accounts it made.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from django.core.management import call_command

from mdms.core import services
from mdms.core.models import Meter
from mdms.core.mqtt import broker, topics
from mdms.core.mqtt import client as mqtt_client

WAIT_S = 5.0


@dataclass
class Session:
    """A connected (or refused) MQTT client, with what it saw."""

    client: mqtt.Client
    connack: Any = None
    connected: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    messages: queue.Queue[mqtt.MQTTMessage] = field(default_factory=queue.Queue)
    acks: queue.Queue[list[Any]] = field(default_factory=queue.Queue)

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> list[Any]:
        self.client.subscribe(topic, qos=1)
        return self.acks.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: str = "{}") -> list[Any]:
        self.client.publish(topic, payload, qos=1)
        return self.acks.get(timeout=WAIT_S)

    def received(self, within_s: float) -> list[str]:
        deadline = time.monotonic() + within_s
        topics_seen: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                topics_seen.append(self.messages.get(timeout=left).topic)
            except queue.Empty:
                break
        return topics_seen


Sessions = Callable[[str, str], Session]  # the sessions fixture: (username, password) -> Session
Register = Callable[[str], tuple[Meter, str]]  # the register fixture: serial prefix -> (meter, password)


def open_session(username: str, password: str) -> Session:
    client = mqtt_client.new_client(
        client_id=f"test-{username}-{uuid.uuid4().hex[:6]}", username=username, password=password
    )
    session = Session(client)

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        session.connack = reason
        session.connected.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *args: session.disconnected.set()
    client.on_message = lambda c, u, message: session.messages.put(message)
    client.on_subscribe = lambda c, u, mid, reasons, props: session.acks.put(list(reasons))
    client.on_publish = lambda c, u, mid, reason, props: session.acks.put([reason])
    # Refused logins must not be retried in the background while the test looks.
    client.reconnect_delay_set(min_delay=60, max_delay=60)
    mqtt_client.connect(client)
    client.loop_start()
    assert session.connected.wait(WAIT_S), f"no CONNACK for {username}"
    return session


@pytest.fixture
def sessions() -> Iterator[Sessions]:
    opened: list[Session] = []

    def open_(username: str, password: str) -> Session:
        opened.append(open_session(username, password))
        return opened[-1]

    yield open_
    for session in opened:
        session.client.disconnect()
        session.client.loop_stop()


@pytest.fixture
def serial() -> Iterator[Callable[[str], str]]:
    """Unique serials, whose broker accounts and roles are deleted after the test."""
    made: list[str] = []

    def new(prefix: str = "T") -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    cleanup: list[broker.Command] = []
    for name in made:
        cleanup += [
            {"command": "deleteClient", "username": name},
            {"command": "deleteRole", "rolename": broker.meter_role(name)},
        ]
    if cleanup:
        with broker.admin_session() as admin:
            admin.run(cleanup)


def admin_watcher(sessions: Sessions, topic: str) -> Session:
    watcher = sessions(*mqtt_client.admin_credentials())
    assert not watcher.subscribe(topic)[0].is_failure
    return watcher


def register_with_hooks(serial: str, capture: Any) -> tuple[Meter, str]:
    """Register a meter and run its broker hook (on commit); the meter and its MQTT password."""
    with capture(execute=True):
        meter, credentials = services.meter_register(serial=serial)
    return meter, credentials.mqtt_password


@pytest.fixture
def register(db: None, serial: Callable[[str], str], django_capture_on_commit_callbacks: Any) -> Register:
    """Register meters under fresh serials (cleaned up by the serial fixture), broker hook run."""

    def register_(prefix: str) -> tuple[Meter, str]:
        return register_with_hooks(serial(prefix), django_capture_on_commit_callbacks)

    return register_


def test_unregistered_meter_is_refused(sessions: Sessions, serial: Callable[[str], str]) -> None:
    session = sessions(serial("NOBODY"), "whatever")

    assert not session.accepted


def test_registered_meter_connects_with_the_password_shown_once(sessions: Sessions, register: Register) -> None:
    meter, password = register("A")

    assert sessions(meter.serial, password).accepted
    assert not sessions(meter.serial, password + "x").accepted
    assert password not in meter.mqtt_password_hash


def test_meter_cannot_publish_or_subscribe_as_another_meter(sessions: Sessions, register: Register) -> None:
    meter_a, password_a = register("A")
    meter_b, _ = register("B")
    watch_b = admin_watcher(sessions, f"meters/{meter_b.serial}/#")
    watch_a = admin_watcher(sessions, topics.topic(meter_a.serial, topics.Kind.READINGS))
    a = sessions(meter_a.serial, password_a)

    refused_publish = a.publish(topics.topic(meter_b.serial, topics.Kind.READINGS))
    refused_subscribe = a.subscribe(topics.topic(meter_b.serial, topics.Kind.COMMANDS))
    a.publish(topics.topic(meter_a.serial, topics.Kind.READINGS))
    ingest = sessions(*mqtt_client.ingest_credentials())
    ingest.publish(topics.topic(meter_b.serial, topics.Kind.COMMANDS), '{"id": "1", "type": "read"}')

    assert refused_publish[0].is_failure
    assert refused_subscribe[0].is_failure
    # Only the command the MDMS sent to B reaches meters/B/#: nothing from meter A, and A does not see it.
    assert watch_b.received(within_s=1.0) == [topics.topic(meter_b.serial, topics.Kind.COMMANDS)]
    assert a.received(within_s=0.2) == []
    # The control: the same watcher setup does see A's publication on A's own topic.
    assert watch_a.received(within_s=1.0) == [topics.topic(meter_a.serial, topics.Kind.READINGS)]


def test_meter_receives_its_own_commands(sessions: Sessions, register: Register) -> None:
    meter, password = register("A")
    session = sessions(meter.serial, password)
    assert not session.subscribe(topics.topic(meter.serial, topics.Kind.COMMANDS))[0].is_failure
    ingest = sessions(*mqtt_client.ingest_credentials())

    assert not ingest.publish(topics.topic(meter.serial, topics.Kind.COMMANDS), '{"id": "1", "type": "read"}')[
        0
    ].is_failure
    assert session.received(within_s=1.0) == [topics.topic(meter.serial, topics.Kind.COMMANDS)]


def test_disabled_meter_is_disconnected_at_once_and_refused_until_enabled(
    sessions: Sessions, register: Register, django_capture_on_commit_callbacks: Any
) -> None:
    meter, password = register("A")
    connected = sessions(meter.serial, password)
    assert connected.accepted

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        services.meter_disable(meter=meter)

    assert connected.disconnected.wait(WAIT_S)
    assert time.monotonic() - started < 2.0
    assert not sessions(meter.serial, password).accepted

    with django_capture_on_commit_callbacks(execute=True):
        services.meter_enable(meter=meter)

    assert sessions(meter.serial, password).accepted


def test_removed_meter_is_refused(
    sessions: Sessions, register: Register, django_capture_on_commit_callbacks: Any
) -> None:
    meter, password = register("A")
    with django_capture_on_commit_callbacks(execute=True):
        services.meter_remove(meter=meter, on=meter.created_at.date())

    assert not sessions(meter.serial, password).accepted


def test_ingest_account_receives_what_a_meter_publishes_alone_or_in_its_group(
    sessions: Sessions, register: Register
) -> None:
    meter, password = register("A")
    ingest = sessions(*mqtt_client.ingest_credentials())
    # Alone (the default) or in the shared group (INGEST_SHARE_GROUP): both are the ingest's to take.
    granted = [
        ingest.subscribe(topics.inbound(kind, group))[0]
        for group in ("", topics.SHARE_GROUP)
        for kind in topics.INBOUND
    ]
    commands = ingest.subscribe(topics.wildcard(topics.Kind.COMMANDS))[0]
    meter_session = sessions(meter.serial, password)

    for _ in range(20):
        assert not meter_session.publish(topics.topic(meter.serial, topics.Kind.READINGS))[0].is_failure

    assert not any(reason.is_failure for reason in granted)
    assert commands.is_failure, "the ingest account sends commands to meters, it does not read them"
    assert topics.topic(meter.serial, topics.Kind.READINGS) in ingest.received(within_s=2.0)


def test_mqtt_sync_repairs_missed_changes_and_a_second_run_changes_nothing(
    sessions: Sessions,
    serial: Callable[[str], str],
    register: Register,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Registered and disabled while the broker "was away": the hooks never ran.
    missed, missed_password = services.meter_register(serial=serial("MISSED"))[0], "unknown"
    known, known_password = register("KNOWN")
    Meter.objects.filter(pk=known.pk).update(status=Meter.Status.DISABLED)

    first, second = StringIO(), StringIO()
    call_command("mqtt_sync", stdout=first)
    call_command("mqtt_sync", stdout=second)

    assert "created 1" in first.getvalue()
    assert "disabled 1" in first.getvalue()
    assert "changed 0" in second.getvalue()
    assert "commands 0" in second.getvalue()
    assert not sessions(known.serial, known_password).accepted
    # The broker never saw the missed meter's password; new credentials let it in.
    assert not sessions(missed.serial, missed_password).accepted
    with django_capture_on_commit_callbacks(execute=True):
        credentials = services.meter_issue_credentials(meter=missed)
    assert sessions(missed.serial, credentials.mqtt_password).accepted


def test_broker_outage_does_not_break_registration(
    db: None, settings: Any, django_capture_on_commit_callbacks: Any, caplog: Any
) -> None:
    settings.MQTT_PORT = 9  # discard: nothing listens there
    with caplog.at_level(logging.ERROR, logger="mdms.core.mqtt.broker"):
        meter, _ = register_with_hooks(f"OUTAGE-{uuid.uuid4().hex[:10]}", django_capture_on_commit_callbacks)

    assert Meter.objects.filter(pk=meter.pk).exists()
    assert "run manage.py mqtt_sync" in caplog.text


def test_register_meter_command_prints_a_password_that_works(
    db: None, sessions: Sessions, serial: Callable[[str], str], django_capture_on_commit_callbacks: Any
) -> None:
    out = StringIO()
    name = serial("CMD")

    with django_capture_on_commit_callbacks(execute=True):
        call_command("register_meter", name, "--solar", stdout=out)

    password = next(
        line.split(":", 1)[1].strip() for line in out.getvalue().splitlines() if line.startswith("password:")
    )
    assert Meter.objects.get(serial=name).has_solar
    assert sessions(name, password).accepted
