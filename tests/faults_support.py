"""What the fault tests share: meters publishing numbered readings over MQTT, and the checks of what
was stored and rolled up. The private servers themselves come from scripts/services.py."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from mdms.core.mqtt import topics
from mdms.core.mqtt.client import connect, new_client
from mdms.core.timeseries import ROLLUPS_DAILY, collection

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=15)
# The PUBACK reason code (MQTT 5, 3.4.2.1) of a message the broker accepted and routed to nobody.
NO_MATCHING_SUBSCRIBERS = 16
# Every tenth reading carries an over-voltage the rules flag: detection must judge each once.
PLANTED_EVERY = 10


def reading(i: int) -> dict[str, Any]:
    """Reading number i: a unique interval, an energy that tells it apart, a planted anomaly on every tenth."""
    return {
        "ts": (T0 + STEP * (i + 1)).isoformat(),
        "interval_s": 900,
        "energy_import_kwh": round(0.001 * (i + 1), 3),
        "voltage_v": 300.0 if i % PLANTED_EVERY == 0 else 230.0,
    }


def expected_kwh(total: int) -> float:
    return round(sum(0.001 * (i + 1) for i in range(total)), 3)


class PublishingMeter:
    """A registered meter publishing over MQTT (QoS 1) with its own credentials; reconnects by itself."""

    def __init__(self, person: Any, *, session: bool = False) -> None:
        self.serial = person.meter.serial
        self.pk = person.meter.pk
        self.client = new_client(
            client_id=f"{self.serial}-{uuid.uuid4().hex[:6]}",
            username=self.serial,
            password=person.mqtt_password,
            clean_start=not session,
            session_expiry_s=3600 if session else 0,
        )
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, reason, p: self.connected.set() if not reason.is_failure else None
        self.client.on_disconnect = lambda *args: self.connected.clear()
        # PUBACKs with reason 16: the broker took the reading but had no subscriber to give it to,
        # so it dropped it (paho still counts the publish as done).
        self.no_subscribers = 0
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        # A meter keeps what it could not deliver while the broker was away, and sends it again.
        self.client.max_queued_messages_set(0)
        connect(self.client)
        self.client.loop_start()
        assert self.connected.wait(15), "the broker refused the meter"

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        if reason == NO_MATCHING_SUBSCRIBERS:
            self.no_subscribers += 1

    def publish(self, i: int) -> mqtt.MQTTMessageInfo:
        """Publish reading i. Like a meter with QoS 1, a reading the client refuses while it is
        disconnected (paho answers "not currently connected") is kept and sent once connected again."""
        payload = json.dumps(reading(i))
        deadline = time.monotonic() + 120
        while True:
            info = self.client.publish(topics.topic(self.serial, topics.Kind.READINGS), payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_NO_CONN or time.monotonic() > deadline:
                return info
            self.connected.wait(1.0)
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_steadily(
    meters: list[PublishingMeter],
    total: int,
    *,
    per_second: float,
    sent: list[int],
    stop: threading.Event,
    infos: dict[tuple[int, int], mqtt.MQTTMessageInfo] | None = None,
) -> None:
    """Readings 0..total-1 of every meter, `per_second` rounds a second; `sent[0]` counts rounds;
    `infos[(meter pk, i)]` keeps each publish's state (was it acknowledged by the broker?)."""
    started = time.monotonic()
    for i in range(total):
        if stop.is_set():
            return
        for meter in meters:
            info = meter.publish(i)
            if infos is not None:
                infos[(meter.pk, i)] = info
        sent[0] = i + 1
        delay = started + (i + 1) / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def rollup_totals(meter_pk: int) -> tuple[int, float]:
    """(intervals, kWh) summed over the meter's daily rollups."""
    rows = list(collection(ROLLUPS_DAILY).find({"meter": meter_pk}, {"intervals": 1, "total_import_kwh": 1}))
    return sum(int(r.get("intervals") or 0) for r in rows), round(sum(float(r["total_import_kwh"]) for r in rows), 3)


def bounded_wait(condition: Callable[[], bool], timeout: float, what: str, pause: float = 0.2) -> float:
    """Wait until the condition holds; returns the seconds it took, fails after timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(pause)
    return time.monotonic() - started


def people(count: int, prefix: str) -> list[Any]:
    """Registered consumers with active meters (each with its broker account on the configured broker)."""
    from mdms.core.testing import make_consumer

    return [make_consumer(f"{prefix}{uuid.uuid4().hex[:6]}") for _ in range(count)]


def missing_numbers(meter_pk: int, total: int) -> list[int]:
    """The reading numbers (0..total-1) of this meter not stored: what a failed test lost."""
    from mdms.core.timeseries import READINGS

    stored = {
        round((document["ts"] - T0) / STEP) - 1
        for document in collection(READINGS).find({"meter": meter_pk}, {"ts": 1})
    }
    return sorted(set(range(total)) - stored)
