"""Fixtures of the data hub tests: a fake hub on a local port, fast retry settings, connectors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ingest.tests.datahub_fake import FakeHub


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as running:
        yield running


@pytest.fixture
def hub_settings(settings: Any) -> Any:
    """Short waits, so that retries take a fraction of a second; the limiter tests set 1 s again."""
    settings.DATAHUB_MAX_ATTEMPTS = 4
    settings.DATAHUB_RETRY_BASE_S = 0.2
    settings.DATAHUB_RETRY_MAX_S = 5.0
    settings.DATAHUB_TIMEOUT_S = 5.0
    settings.DATAHUB_MIN_INTERVAL_S = 0.05
    settings.DATAHUB_CATCHUP_DAYS = 7
    return settings


@pytest.fixture
def make_connector(hub: FakeHub, hub_settings: Any) -> Callable[..., Any]:
    from ingest.models import DataHubConnector

    def make(person: Any, **fields: Any) -> DataHubConnector:
        values = {
            "base_url": hub.base_url,
            "token": f"token-of-{person.user.username}-0123456789",
            "usage_point_id": f"0{person.meter.pk:013d}",
            **fields,
        }
        return DataHubConnector.objects.create(meter=person.meter, **values)

    return make
