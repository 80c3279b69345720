from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from mdms.core import timeseries


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.django_db
def test_healthz_is_200_with_every_service_up(client: Client) -> None:
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["services"]) == {"postgresql", "mongodb", "redis", "mosquitto"}
    assert all(s["up"] for s in body["services"].values())


@pytest.fixture
def fresh_mongo_client() -> Iterator[None]:
    """Drop the cached MongoClient so an overridden MONGODB_URI takes effect, and again after."""
    timeseries._client = None
    yield
    timeseries._client = None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("service", "override"),
    [
        ("redis", lambda port: {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}),
        ("mosquitto", lambda port: {"MQTT_PORT": port}),
        ("mongodb", lambda port: {"MONGODB_URI": f"mongodb://127.0.0.1:{port}/x?serverSelectionTimeoutMS=300"}),
    ],
)
def test_healthz_is_503_and_names_the_service_that_is_down(
    client: Client, fresh_mongo_client: None, service: str, override: object
) -> None:
    with override_settings(**override(_closed_port())):  # type: ignore[operator]
        response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["services"][service]["up"] is False
    assert body["services"][service]["detail"]
    assert all(s["up"] for name, s in body["services"].items() if name != service)
