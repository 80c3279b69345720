"""The suite runs against the real services: each test fails (never skips) when one is down."""

from __future__ import annotations

import uuid

import paho.mqtt.client as mqtt
import pytest
import redis
from django.conf import settings
from django.db import connection

from mdms.core import health, timeseries


@pytest.mark.django_db
def test_postgresql_answers_a_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)


def test_mongodb_is_a_replica_set_with_time_series(mongo: object) -> None:
    hello = timeseries.client().admin.command("hello")
    assert hello.get("setName"), "MongoDB must run as a replica set (change streams need one)"
    options = {c["name"]: c for c in timeseries.db().list_collections()}
    assert options[timeseries.READINGS]["type"] == "timeseries"
    assert options[timeseries.READINGS]["options"]["timeseries"]["metaField"] == "meter"


def test_redis_round_trips_a_value() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    key = f"mdms-test-{uuid.uuid4().hex}"
    client.set(key, "ok", ex=10)
    assert client.get(key) == b"ok"
    client.delete(key)


def test_mosquitto_accepts_the_mdms_account() -> None:
    assert health.check_mosquitto().startswith("MQTT")


def test_mosquitto_refuses_an_anonymous_client() -> None:
    reasons: list[object] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, f, reason, p: reasons.append(reason)
    client.connect(settings.MQTT_HOST, settings.MQTT_PORT)
    for _ in range(50):
        client.loop(timeout=0.1)
        if reasons:
            break
    client.disconnect()
    assert reasons and reasons[0].is_failure  # type: ignore[attr-defined]
