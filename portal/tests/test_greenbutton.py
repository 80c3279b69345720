"""The "Download my data" Green Button file validates against the Alliance's schemas (copied here)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from lxml import etree

from billing.rollups import rollups_rebuild
from mdms.core.localtime import local_midnight
from mdms.core.testing import make_consumer
from mdms.core.timeseries import rollups as rollup_store
from portal.greenbutton import local_time_parameters
from portal.tests.usage_data import store_days

SCHEMAS = Path(__file__).parent / "greenbutton"
ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"


@pytest.fixture(scope="module")
def usage_schema() -> etree.XMLSchema:
    # usage.xsd imports atom.xsd (which imports xml.xsd) from this folder: one schema checks both.
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "usage.xsd")))


def test_the_north_american_dst_rules_match_the_alliances_sample() -> None:
    assert local_time_parameters("America/New_York", 2012) == (-18000, 3600, "360E2000", "B40E2000")


def test_the_european_dst_rules_use_the_last_occurrence_operator() -> None:
    # usage.xsd's DstRuleType: operator 7 is "last occurrence", 6 would be "fifth" (none in October 2026).
    assert local_time_parameters("Europe/Paris", 2026) == (3600, 3600, "3E0E2000", "AE0E3000")


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "quality"), [("linear", "9"), ("profile", "8")])
def test_interpolated_intervals_carry_quality_9_and_history_estimates_8(
    client: Client, mongo: Any, usage_schema: etree.XMLSchema, method: str, quality: str
) -> None:
    lin = make_consumer("lin")
    day = timezone.localdate() - dt.timedelta(days=3)
    gap = local_midnight(day) + dt.timedelta(hours=5)
    store_days(lin.meter, day, day + dt.timedelta(days=1), import_kwh=0.3, missing={gap})
    rollup_store.upsert_estimates(
        [{"meter": lin.meter.pk, "ts": gap, "energy_import_kwh": 0.3, "energy_export_kwh": 0.0,
          "interval_s": 900, "method": method}]
    )  # fmt: skip
    client.force_login(lin.user)

    response = client.get(f"/meters/{lin.meter.pk}/download/", {"start": day, "end": day, "format": "espi"})

    feed = etree.fromstring(response.content)
    usage_schema.assertValid(feed)
    qualities = [q.text for q in feed.iter(f"{ESPI}quality")]
    assert qualities == [quality]


@pytest.mark.django_db
def test_green_button_download_validates_and_holds_every_interval(
    client: Client, mongo: Any, usage_schema: etree.XMLSchema
) -> None:
    sol = make_consumer("sol", has_solar=True)
    day = timezone.localdate() - dt.timedelta(days=3)
    gap = local_midnight(day) + dt.timedelta(minutes=30)
    store_days(sol.meter, day, day + dt.timedelta(days=2), import_kwh=0.3, export_kwh=0.1, missing={gap})
    rollup_store.upsert_estimates(
        [{"meter": sol.meter.pk, "ts": gap, "energy_import_kwh": 0.2, "energy_export_kwh": 0.0,
          "interval_s": 900, "method": "test"}]
    )  # fmt: skip
    rollups_rebuild(first_day=day, end_day=day + dt.timedelta(days=2), meter_pks=[sol.meter.pk])
    client.force_login(sol.user)

    response = client.get(
        f"/meters/{sol.meter.pk}/download/",
        {"start": day, "end": day + dt.timedelta(days=1), "format": "espi"},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/atom+xml"
    feed = etree.fromstring(response.content)
    # The feed against atom.xsd, whose content wildcard is strict: the ESPI declarations must be loaded too.
    usage_schema.assertValid(feed)
    resources = [content[0] for content in feed.iter(f"{ATOM}content")]
    for resource in resources:
        usage_schema.assertValid(etree.ElementTree(resource))
    kinds = [etree.QName(resource).localname for resource in resources]
    assert {"UsagePoint", "LocalTimeParameters", "MeterReading", "ReadingType", "IntervalBlock"} <= set(kinds)
    assert kinds.count("MeterReading") == 2  # import and export of a solar home
    assert kinds.count("IntervalBlock") == 4  # two days, two directions

    flows = [int(r.findtext(f"{ESPI}flowDirection")) for r in resources if r.tag == f"{ESPI}ReadingType"]
    assert flows == [1, 19]
    import_blocks = [r for r in resources if r.tag == f"{ESPI}IntervalBlock"][:2]
    readings = [reading for block in import_blocks for reading in block.iter(f"{ESPI}IntervalReading")]
    expected = int((local_midnight(day + dt.timedelta(days=2)) - local_midnight(day)).total_seconds() // 900)
    assert len(readings) == expected
    estimated = [r for r in readings if r.find(f"{ESPI}ReadingQuality") is not None]
    assert len(estimated) == 1
    assert estimated[0].findtext(f"{ESPI}ReadingQuality/{ESPI}quality") == "8"
    assert estimated[0].findtext(f"{ESPI}value") == "200"  # Wh
    assert estimated[0].findtext(f"{ESPI}timePeriod/{ESPI}start") == str(int(gap.timestamp()) - 900)
    assert sum(int(r.findtext(f"{ESPI}value") or 0) for r in readings) == 300 * (expected - 1) + 200
