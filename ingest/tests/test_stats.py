"""The operators' ingest stats endpoint: counters and dead letters, for staff roles only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from mdms.core.timeseries import readings as store

pytestmark = pytest.mark.urls("ingest.tests.urls")


def test_operator_sees_counters_and_recent_dead_letters(olivia: Any, mongo: Any, client: Client) -> None:
    store.insert_dead_letters(
        [
            store.dead_letter_document(
                topic="meters/X/readings",
                payload=b"\xff",
                received_at=dt.datetime.now(tz=dt.UTC),
                reason_code="bad_encoding",
                reason="payload is not UTF-8 text",
            )
        ]
    )
    client.force_login(olivia)
    body = client.get("/ingest/stats/").json()
    assert body["dead_letters_last_24h_by_reason"] == {"bad_encoding": 1}
    assert body["recent_dead_letters"][0]["payload"] == "<1 bytes>"
    assert {"received", "stored", "dead_lettered", "duplicates", "last_lag_s"} <= body["counters"].keys()


def test_billing_staff_may_read_stats_but_a_consumer_may_not(alice: Any, bill: Any, mongo: Any, client: Client) -> None:
    client.force_login(bill)
    assert client.get("/ingest/stats/").status_code == 200
    client.force_login(alice.user)
    assert client.get("/ingest/stats/").status_code == 403
    client.logout()
    assert client.get("/ingest/stats/").status_code == 302
