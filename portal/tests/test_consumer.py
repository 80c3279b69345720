from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from billing.rollups import rollups_rebuild
from mdms.core import services
from mdms.core.localtime import local_midnight
from mdms.core.testing import Person, make_consumer
from mdms.core.timeseries import rollups as rollup_store
from portal.tests.usage_data import make_bill, store_days

pytestmark = pytest.mark.django_db


def _figure(page: str, name: str) -> dict[str, Any]:
    """The Plotly figure the page embeds with json_script id `name`."""
    start = page.index(f'id="{name}"')
    body = page[page.index(">", start) + 1 : page.index("</script>", start)]
    return dict(json.loads(body))


def test_a_consumer_dashboard_charts_their_daily_usage(client: Client, alice: Person, mongo: Any) -> None:
    today = timezone.localdate()
    store_days(alice.meter, today - dt.timedelta(days=3), today + dt.timedelta(days=1))
    client.force_login(alice.user)

    page = client.get(f"/meters/{alice.meter.pk}/").content.decode()

    daily = _figure(page, "daily-data")
    measured = dict(zip(daily["data"][0]["x"], daily["data"][0]["y"], strict=True))
    assert measured[(today - dt.timedelta(days=1)).isoformat()] == pytest.approx(24.0)  # 96 x 0.25 kWh
    assert daily["layout"]["yaxis"]["title"]["text"] == "Energy per day (kWh)"
    heatmap = _figure(page, "heatmap-data")
    assert len(heatmap["data"][0]["z"]) == 24
    assert "No usage to show yet" not in page


def test_another_customers_dashboard_is_not_found(client: Client, alice: Person, bob: Person) -> None:
    client.force_login(alice.user)
    assert client.get(f"/meters/{bob.meter.pk}/").status_code == 404
    assert client.get(f"/meters/{bob.meter.pk}/today.json").status_code == 404
    assert client.get(f"/meters/{bob.meter.pk}/download/?start=2026-01-01&end=2026-01-02&format=csv").status_code == 404
    assert client.get(f"/meters/{bob.meter.pk + 1000}/").status_code == 404


def test_another_customers_bill_is_not_found(client: Client, alice: Person, bob: Person) -> None:
    bill = make_bill(bob)
    client.force_login(alice.user)
    assert client.get(f"/bills/{bill.pk}/").status_code == 404


def test_a_new_meter_without_data_explains_the_empty_dashboard(client: Client, alice: Person, mongo: Any) -> None:
    client.force_login(alice.user)
    page = client.get(f"/meters/{alice.meter.pk}/").content.decode()
    assert "No usage to show yet" in page
    assert "No reading yet today" in page
    assert "No bill yet" in page


def test_estimated_energy_is_stacked_apart_and_explained(client: Client, alice: Person, mongo: Any) -> None:
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    # An estimate where a reading is missing, then the day rolled up again.
    gap = local_midnight(yesterday) + dt.timedelta(minutes=15)
    store_days(alice.meter, yesterday, yesterday + dt.timedelta(days=1), missing={gap})
    rollup_store.upsert_estimates(
        [{"meter": alice.meter.pk, "ts": gap, "energy_import_kwh": 0.5, "energy_export_kwh": 0.0,
          "interval_s": 900, "method": "test"}]
    )  # fmt: skip
    rollups_rebuild(first_day=yesterday, end_day=yesterday + dt.timedelta(days=1), meter_pks=[alice.meter.pk])
    client.force_login(alice.user)

    page = client.get(f"/meters/{alice.meter.pk}/").content.decode()

    daily = _figure(page, "daily-data")
    estimated = dict(zip(daily["data"][1]["x"], daily["data"][1]["y"], strict=True))
    assert daily["data"][1]["name"] == "Imported (estimated)"
    assert daily["data"][1]["marker"]["pattern"]["shape"] == "/"
    assert estimated[yesterday.isoformat()] == pytest.approx(0.5)
    assert "Estimated: a reading was missing" in page


def test_a_solar_home_sees_export_below_the_axis_and_self_sufficiency(client: Client, mongo: Any) -> None:
    sol = make_consumer("sol", has_solar=True)
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    store_days(sol.meter, yesterday, yesterday + dt.timedelta(days=1), import_kwh=0.2, export_kwh=0.1)
    client.force_login(sol.user)

    page = client.get(f"/meters/{sol.meter.pk}/").content.decode()

    daily = _figure(page, "daily-data")
    export = dict(zip(daily["data"][2]["x"], daily["data"][2]["y"], strict=True))
    assert export[yesterday.isoformat()] == pytest.approx(-9.6)
    assert "Self-sufficiency (net)" in page
    assert '<span class="value" id="self-sufficiency">50 %</span>' in page


def test_todays_power_is_served_as_json_for_the_live_chart(client: Client, alice: Person, mongo: Any) -> None:
    today = timezone.localdate()
    store_days(alice.meter, today, today + dt.timedelta(days=1))
    client.force_login(alice.user)

    payload = client.get(f"/meters/{alice.meter.pk}/today.json").json()

    if payload["x"]:  # just after local midnight no interval of today has ended yet
        assert payload["latest_kw"] == pytest.approx(1.0)  # 0.25 kWh per 15 minutes
        assert len(payload["x"]) == len(payload["y"])


def test_bills_show_line_items_and_print(client: Client, alice: Person) -> None:
    bill = make_bill(alice)
    client.force_login(alice.user)

    dashboard = client.get(f"/meters/{alice.meter.pk}/").content.decode()
    printable = client.get(f"/bills/{bill.pk}/").content.decode()

    assert "42.50 EUR" in dashboard
    assert "Standing charge" in dashboard
    assert f"/bills/{bill.pk}/" in dashboard
    assert "Energy" in printable and "32.50" in printable
    assert "estimated" in printable
    assert "window.print()" in printable


def test_download_as_csv_lists_every_interval_with_its_quality(client: Client, alice: Person, mongo: Any) -> None:
    day = timezone.localdate() - dt.timedelta(days=2)
    store_days(alice.meter, day, day + dt.timedelta(days=1))
    client.force_login(alice.user)

    response = client.get(f"/meters/{alice.meter.pk}/download/", {"start": day, "end": day, "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    assert len(rows) in (92, 96, 100)  # 23, 24 or 25 hours
    assert {(row["quality"], row["espi_quality"], row["source"]) for row in rows} == {("valid", "0", "mqtt")}
    assert sum(float(row["import_kwh"]) for row in rows) == pytest.approx(0.25 * len(rows))


def test_download_refuses_a_reversed_range(client: Client, alice: Person) -> None:
    client.force_login(alice.user)
    response = client.get(
        f"/meters/{alice.meter.pk}/download/", {"start": "2026-02-02", "end": "2026-02-01", "format": "csv"}
    )
    assert response.status_code == 400
    assert "before the start date" in response.content.decode()


def test_the_plotly_library_is_served_from_our_own_static_files(client: Client, alice: Person) -> None:
    client.force_login(alice.user)
    page = client.get(f"/meters/{alice.meter.pk}/").content.decode()
    assert "/static/vendor/plotly.min.js" in page
    assert "cdn" not in page.lower()


def test_a_new_tenant_does_not_see_the_previous_households_usage(client: Client, alice: Person, mongo: Any) -> None:
    today = timezone.localdate()
    moved_in = today - dt.timedelta(days=2)
    store_days(alice.meter, today - dt.timedelta(days=5), today + dt.timedelta(days=1))
    alice.account.move_out_date = moved_in
    alice.account.save()
    carol = services.customer_create(name="Carol", username="carol", password="carol-pw")
    services.account_open(
        number="ACC-CAROL", customer=carol, premise=alice.account.premise, tariff=alice.account.tariff,
        move_in_date=moved_in,
    )  # fmt: skip
    assert carol.user is not None
    client.force_login(carol.user)

    page = client.get(f"/meters/{alice.meter.pk}/").content.decode()
    download = client.get(
        f"/meters/{alice.meter.pk}/download/",
        {"start": today - dt.timedelta(days=5), "end": today - dt.timedelta(days=1), "format": "csv"},
    )

    measured = dict(zip(*(_figure(page, "daily-data")["data"][0][k] for k in ("x", "y")), strict=True))
    assert measured[(today - dt.timedelta(days=3)).isoformat()] == 0
    assert measured[(today - dt.timedelta(days=1)).isoformat()] == pytest.approx(24.0)
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))  # type: ignore[attr-defined]
    assert min(row["interval_start"] for row in rows) >= moved_in.isoformat()


def test_a_small_estimated_share_never_reads_zero_percent() -> None:
    from decimal import Decimal

    from portal.templatetags.humanize_kwh import percent

    assert percent(Decimal("0.0021")) == "<1 %"  # 1.551 kWh of 740: not "0 %"
    assert percent(Decimal("0")) == "0 %"
    assert percent(Decimal("0.0056")) == "1 %"
    assert percent(Decimal("0.9991")) == ">99 %"
    assert percent(Decimal("1")) == "100 %"
    assert percent(None) == "—"
