"""`manage.py migrate` creates MongoDB's time series and their indexes, as `make run` and deploys need."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from mdms.core import timeseries


@pytest.mark.django_db
def test_migrate_creates_the_readings_time_series_with_its_meter_ts_index(mongo: Any) -> None:
    database = timeseries.db()
    database.drop_collection(timeseries.READINGS)

    call_command("migrate", verbosity=0)

    info = next(database.list_collections(filter={"name": timeseries.READINGS}))
    assert info["type"] == "timeseries"
    assert info["options"]["timeseries"]["metaField"] == "meter"
    assert timeseries.READINGS_METER_TS_INDEX in database[timeseries.READINGS].index_information()
