"""The operators' ingest health page says what its lag measures, in units a person reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from ingest import counters
from portal.templatetags.humanize_kwh import duration


@pytest.fixture
def ingest_counters() -> Iterator[None]:
    yield
    counters.connection().delete(counters.COUNTERS_KEY, counters.REASONS_KEY)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "—"),
        ("", "—"),
        (0.8, "0.8 s"),
        (42.4, "42 s"),
        (185, "3 min 5 s"),
        (3 * 3600 + 12 * 60 + 7, "3 h 12 min"),
        (7200, "2 h"),
        (14084020.5, "163 d"),
        (90061, "1 d 1 h"),
    ],
)
def test_durations_read_in_the_two_largest_units(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.django_db
@pytest.mark.usefixtures("ingest_counters")
def test_the_ingest_lag_of_a_history_backfill_reads_in_days_and_says_what_it_measures(
    olivia: Any, mongo: Any, client: Client
) -> None:
    now = dt.datetime.now(dt.UTC)
    newest = now - dt.timedelta(seconds=14084020.5)  # a batch of readings from 163 days ago
    pipe = counters.connection().pipeline()
    counters.record_batch(pipe, counts={"stored": 96}, reasons={}, latency_ms=12.0, newest_ts=newest, now=now)
    pipe.execute()
    client.force_login(olivia)

    page = client.get("/operator/ingest/").content.decode()

    assert "14084020" not in page
    assert ">163 d<" in page
    assert "time since the meter took the newest reading of the last stored batch" in page
    assert "an import or backfill of history" in page
