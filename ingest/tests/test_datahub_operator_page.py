"""The operators' ingest page shows the last day's data hub pulls: outcomes and the latest errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.test import Client
from django.urls import reverse

from ingest.datahub.pull import datahub_pull
from ingest.models import DataHubPull
from ingest.tests.datahub_fake import FakeHub, Scripted


def test_the_ingest_page_counts_pulls_and_lists_errors_with_their_http_status(
    olivia: Any, alice: Any, bob: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    ok_connector, failing = make_connector(alice), make_connector(bob)
    hub.queue(Scripted(), Scripted(403, b'{"error": "consent_revoked"}'))
    day = dt.date(2026, 1, 10)
    stored = datahub_pull(connector=ok_connector, start=day, end=day + dt.timedelta(days=1), trigger="daily")
    datahub_pull(connector=failing, start=day, end=day + dt.timedelta(days=3), trigger="daily")
    client = Client()
    client.force_login(olivia)

    page = client.get(reverse("operator_ingest")).content.decode()

    assert "Data hub pulls, 24 h" in page
    assert '<span class="value" id="datahub-ok">1</span>' in page
    assert '<span class="value" id="datahub-errors">1</span>' in page
    assert f"{stored.readings_stored} readings stored" in page
    assert bob.meter.serial in page and "<td>403</td>" in page and "consent_revoked" in page
    assert "10 Jan to 12 Jan" in page
    assert DataHubPull.objects.count() == 2


def test_a_consumer_cannot_open_the_ingest_page(alice: Any, mongo: Any) -> None:
    client = Client()
    client.force_login(alice.user)
    assert client.get(reverse("operator_ingest")).status_code == 404
