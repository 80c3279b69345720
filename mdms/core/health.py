"""Is each service up? Used by /healthz, `make run`'s readiness wait, and the test suite."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pymongo
import redis
from django.conf import settings
from django.db import connection

from mdms.core import timeseries


@dataclass(frozen=True)
class ServiceState:
    name: str
    up: bool
    latency_ms: float
    detail: str


def check_postgres() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        row = cursor.fetchone()
    return str(row[0]).split(",")[0] if row else "?"


def check_mongodb(timeout_ms: int = 3000) -> str:
    """A client of its own with a short wait: the project's waits out a failover (20 s), a health check must not."""
    options = {**timeseries.client_options(settings.MONGODB_URI), "serverSelectionTimeoutMS": timeout_ms}
    with pymongo.MongoClient(settings.MONGODB_URI, **options) as client:
        info = client.server_info()
        primary = client.primary
    where = f" (primary {primary[0]}:{primary[1]})" if primary else ""
    return f"MongoDB {info.get('version', '?')}{where}"


def check_redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
        return f"Redis {client.info('server').get('redis_version', '?')}"
    finally:
        client.close()


def check_mosquitto(timeout_s: float = 3.0) -> str:
    """A real MQTT CONNECT with the MDMS's admin account: the broker must accept it."""
    result: dict[str, object] = {}
    done = threading.Event()

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        result["reason"] = reason
        done.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"mdms-health-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(settings.MQTT_ADMIN_USERNAME, settings.MQTT_ADMIN_PASSWORD)
    if settings.MQTT_TLS:
        client.tls_set(ca_certs=settings.MQTT_CA_FILE or None)
    client.on_connect = on_connect
    client.connect(settings.MQTT_HOST, settings.MQTT_PORT, keepalive=10)
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise TimeoutError(f"no CONNACK from {settings.MQTT_HOST}:{settings.MQTT_PORT} in {timeout_s} s")
        reason = result["reason"]
        if getattr(reason, "is_failure", False):
            raise ConnectionRefusedError(f"broker refused the MDMS account: {reason}")
        return f"MQTT {settings.MQTT_HOST}:{settings.MQTT_PORT}"
    finally:
        client.disconnect()
        client.loop_stop()


CHECKS: dict[str, Callable[[], str]] = {
    "postgresql": check_postgres,
    "mongodb": check_mongodb,
    "redis": check_redis,
    "mosquitto": check_mosquitto,
}


def service_states() -> list[ServiceState]:
    states = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail, up = check(), True
        except Exception as exc:  # noqa: BLE001 - any failure means the service is down; say why
            detail, up = f"{type(exc).__name__}: {exc}", False
        states.append(ServiceState(name, up, round((time.perf_counter() - started) * 1000, 1), detail))
    return states
