"""Fixtures of the lake's tests: a lake of each test's own (a temporary directory), Paris time, data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mdms.core.localtime import day_bounds
from mdms.core.timeseries.readings import insert_events, insert_readings, reading_document

QUARTER = dt.timedelta(minutes=15)
RECEIVED = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def lake_settings(settings: Any, tmp_path: Path) -> Any:
    settings.TIME_ZONE = "Europe/Paris"
    settings.LAKE_URL = str(tmp_path / "lake")
    settings.LAKE_STORAGE_OPTIONS = {}
    settings.LAKE_RAW_RETENTION_DAYS = 400
    return settings


def day_readings(
    meter_pk: int, day: dt.date, *, kwh: Callable[[int], float] = lambda k: 0.25, received_s: int = 0
) -> list[dict[str, Any]]:
    """One 15-minute reading per interval of the local day (23, 24 or 25 hours), ts = interval end."""
    start, end = day_bounds(day)
    documents, k = [], 0
    while start + QUARTER * k < end:
        values = {
            "energy_import_kwh": kwh(k),
            "energy_export_kwh": 0.01 * (k % 3),
            "register_import_kwh": 1000.0 + k,
            "voltage_v": 230.0 + (k % 5),
        }
        documents.append(
            reading_document(
                meter_pk=meter_pk,
                ts=start + QUARTER * (k + 1),
                received_at=RECEIVED + dt.timedelta(seconds=received_s + k),
                values=values,
                interval_s=900,
            )
        )
        k += 1
    return documents


def store_day(meter_pk: int, day: dt.date, **options: Any) -> list[dict[str, Any]]:
    documents = day_readings(meter_pk, day, **options)
    insert_readings([dict(d) for d in documents])
    return documents


def store_events(meter_pk: int, day: dt.date, *, hours: tuple[int, ...] = (3, 4)) -> list[dict[str, Any]]:
    start, _ = day_bounds(day)
    documents = []
    for n, hour in enumerate(hours):
        kind = "power_off" if n % 2 == 0 else "power_on"
        documents.append(
            {
                "meter": meter_pk,
                "ts": start + dt.timedelta(hours=hour),
                "type": kind,
                "detail": {"phase": "L1", "n": n} if kind == "power_off" else None,
                "received_at": RECEIVED + dt.timedelta(seconds=n),
            }
        )
    insert_events([dict(d) for d in documents])
    return documents
