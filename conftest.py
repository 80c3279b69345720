"""Test fixtures shared by every app: real services, test databases, people.

Tests talk to the real PostgreSQL (pytest-django's test database), MongoDB (a test database,
dropped at the end), Redis and Mosquitto, as started by `make services`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
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


def _test_redis_url(url: str) -> str:
    """The same Redis server, another logical database: the suite never touches a running demo's keys."""
    from urllib.parse import urlsplit, urlunsplit

    number = int(os.environ.get("MDMS_TEST_REDIS_DB", "15"))
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


@pytest.fixture(scope="session", autouse=True)
def _redis_test_database() -> Iterator[str]:
    """Point Redis (streams, counters, cache, throttles) at a test database, for this process and the
    worker subprocesses tests start (they inherit REDIS_URL). MDMS_TEST_REDIS_DB picks it (default 15)."""
    import redis

    original_url, original_env = settings.REDIS_URL, os.environ.get("REDIS_URL")
    url = _test_redis_url(original_url)
    settings.REDIS_URL = url
    settings.CACHES = {name: {**spec, "LOCATION": url} for name, spec in settings.CACHES.items()}
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = url
    from mdms.celery import app

    app.conf.broker_url = app.conf.result_backend = url
    os.environ["REDIS_URL"] = url
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()
    settings.REDIS_URL = original_url
    if original_env is None:
        os.environ.pop("REDIS_URL", None)
    else:
        os.environ["REDIS_URL"] = original_env


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


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One Chromium for the whole session, for every app's browser tests (a second would find
    Playwright's loop already running on the main thread)."""
    from portal.tests.conftest import CHROMIUM, CHROMIUM_ARGS

    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `python scripts/services.py test-tools` (make test does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on the main thread, and Django then refuses ORM
    # calls from that thread (database setup, factories). The test code is synchronous; the loop
    # only drives the browser, so the guard does not apply.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh page (own cookies) at desktop size; page.set_viewport_size(PHONE) for a phone."""
    from portal.tests.conftest import DESKTOP

    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
