"""The admin configures connectors without ever showing their token, and shows pulls read only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ingest.models import DataHubConnector, DataHubPull


def admin_client(db: None) -> Client:
    User.objects.create_superuser("root", "root@example.org", "root-pw")
    client = Client()
    client.login(username="root", password="root-pw")
    return client


def test_the_connector_list_shows_the_last_pull_and_a_masked_token(
    db: None, alice: Any, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    DataHubPull.objects.create(
        connector=connector,
        start_day=dt.date(2026, 1, 10),
        end_day=dt.date(2026, 1, 11),
        trigger="daily",
        status=DataHubPull.Status.ERROR,
        http_status=401,
        started_at=dt.datetime(2026, 1, 11, 6, tzinfo=dt.UTC),
        error="HTTP 401 Unauthorized",
    )
    page = admin_client(db).get(reverse("admin:ingest_datahubconnector_changelist")).content.decode()
    assert alice.meter.serial in page and "error (HTTP 401)" in page
    assert connector.token not in page and connector.masked_token in page


def test_the_change_form_never_shows_the_token_and_keeps_it_when_left_empty(
    db: None, alice: Any, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    client = admin_client(db)
    url = reverse("admin:ingest_datahubconnector_change", args=[connector.pk])
    assert connector.token not in client.get(url).content.decode()
    form = {
        "meter": alice.meter.pk,
        "base_url": "https://hub.example.org",
        "path": connector.path,
        "token": "",
        "usage_point_id": connector.usage_point_id,
        "enabled": "on",
    }
    response = client.post(url, form)
    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.base_url == "https://hub.example.org" and connector.token.startswith("token-of-alice")
    client.post(url, {**form, "token": "a-new-secret-token-value"})
    connector.refresh_from_db()
    assert connector.token == "a-new-secret-token-value"


def test_a_connector_needs_a_token_and_an_http_url(db: None, alice: Any) -> None:
    client = admin_client(db)
    form = {
        "meter": alice.meter.pk,
        "base_url": "ftp://hub.example.org",
        "path": "/x",
        "token": "",
        "usage_point_id": "1",
    }
    response = client.post(reverse("admin:ingest_datahubconnector_add"), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "token" in errors and "base_url" in errors
    assert not DataHubConnector.objects.exists()


def test_pulls_are_read_only_and_filtered_by_status(db: None, alice: Any, make_connector: Callable[..., Any]) -> None:
    connector = make_connector(alice)
    for status in (DataHubPull.Status.OK, DataHubPull.Status.ERROR):
        DataHubPull.objects.create(
            connector=connector,
            start_day=dt.date(2026, 1, 10),
            end_day=dt.date(2026, 1, 11),
            trigger="daily",
            status=status,
            started_at=dt.datetime(2026, 1, 11, 6, tzinfo=dt.UTC),
            error="HTTP 503 busy" if status == DataHubPull.Status.ERROR else "",
        )
    client = admin_client(db)
    listing = client.get(reverse("admin:ingest_datahubpull_changelist"), {"status__exact": "error"})
    assert listing.status_code == 200
    assert "HTTP 503 busy" in listing.content.decode()
    assert listing.context["cl"].result_count == 1
    assert client.get(reverse("admin:ingest_datahubpull_add")).status_code == 403
