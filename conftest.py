"""Test fixtures shared by every app: real services, test databases, people.

Tests talk to the real PostgreSQL (pytest-django's test database), MongoDB (a test database,
dropped at the end), Redis and Mosquitto, as started by `make services`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings


@pytest.fixture(scope="session", autouse=True)
def _mongodb_test_database() -> Iterator[str]:
    """Point every MongoDB access at a test database of its own (per xdist worker)."""
    from mdms.core import timeseries

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    name = f"test_{settings.MONGODB_DB}{settings.MDMS_TEST_SUFFIX}{'_' + worker if worker else ''}"
    original = settings.MONGODB_DB
    settings.MONGODB_DB = name
    timeseries.client().drop_database(name)
    timeseries.ensure_collections()
    yield name
    timeseries.client().drop_database(name)
    settings.MONGODB_DB = original


@pytest.fixture(scope="session", autouse=True)
def _mqtt_ingest_account() -> None:
    """The broker has the shared roles and the ingest account before any test speaks MQTT.

    Idempotent and quick (about 0.1 s): it changes nothing when the account is already right.
    """
    from mdms.core.mqtt import broker

    broker.ensure_ingest_account()


@pytest.fixture
def mongo(_mongodb_test_database: str) -> Iterator[Any]:
    """The test MongoDB database, emptied (but not dropped) after each test that uses it."""
    from mdms.core import timeseries

    database = timeseries.db()
    yield database
    for name in database.list_collection_names():
        if not name.startswith("system."):
            database[name].delete_many({})


@pytest.fixture
def alice(db: None) -> Any:
    from mdms.core.testing import make_consumer

    return make_consumer("alice")


@pytest.fixture
def bob(db: None) -> Any:
    from mdms.core.testing import make_consumer

    return make_consumer("bob")


@pytest.fixture
def olivia(db: None) -> Any:
    from mdms.core.roles import Role
    from mdms.core.testing import make_staff

    return make_staff("olivia", Role.OPERATOR)


@pytest.fixture
def bill(db: None) -> Any:
    from mdms.core.roles import Role
    from mdms.core.testing import make_staff

    return make_staff("bill", Role.BILLING)


@pytest.fixture
def role_groups(transactional_db: None) -> None:
    """The role groups a data migration creates, again: a transactional test's flush empties every table."""
    from django.contrib.auth.models import Group

    from mdms.core.roles import Role

    for role in Role:
        Group.objects.get_or_create(name=role.value)
