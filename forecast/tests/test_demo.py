"""The demo grid: seed_demo rates one feeder tight on purpose, and the forecast warns about that one only."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from forecast import services
from forecast.tests.helpers import local_midnight
from ingest.management.commands.simulate_meters import profiles
from ingest.simulator.load import LoadModel
from mdms.core.models import Meter
from mdms.core.timeseries import rollups
from mdms.core.timeseries.readings import insert_readings, reading_document

FIRST_DAY = dt.date(2026, 10, 26)
DAYS = 21


@override_settings(FORECAST_CAPACITY_WARNING_SHARE=0.9)
def test_the_demo_shows_one_feeder_heading_past_its_rating(db: None, mongo: Any, tmp_path: Path) -> None:
    call_command("seed_demo", meters=96, credentials_file=tmp_path / "creds.csv", stdout=StringIO())
    meters = list(Meter.objects.order_by("serial").values_list("pk", "serial"))
    households, _known = profiles([serial for _pk, serial in meters], seed=1, solar_share=0.15)
    start, end = local_midnight(FIRST_DAY), local_midnight(FIRST_DAY + dt.timedelta(days=DAYS))
    documents = []
    for (pk, _serial), household in zip(meters, households, strict=True):
        model = LoadModel(household, 1)
        moment = start
        while moment < end:
            moment += dt.timedelta(hours=1)
            sample = model.sample(moment, 3600)
            net_kwh = (sample.consumption_w - sample.production_w) / 1000.0
            values = {"energy_import_kwh": max(0.0, net_kwh), "energy_export_kwh": max(0.0, -net_kwh)}
            documents.append(
                reading_document(meter_pk=pk, ts=moment, received_at=moment, values=values, interval_s=3600)
            )
    insert_readings(documents)
    rollups.recompute_daily([pk for pk, _s in meters], start, end, interval_s=3600)

    result = services.forecast_run(origin=end)
    assert [warning.feeder.code for warning in result.warnings.opened] == ["est-f2"]
    shares = {
        item.key.feeder.code: (item.peak[0] or 0.0) / (item.key.capacity_kw or 1.0)
        for item in result.forecasts
        if item.key.feeder is not None
    }
    assert shares["est-f2"] > 0.9
    assert max(share for code, share in shares.items() if code != "est-f2") < 0.75
    assert shares["est-f2"] == pytest.approx(max(shares.values()))
