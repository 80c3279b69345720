"""Operators' first day in a real browser (headless Chromium): the outages list pages and exports CSV,
a meter is found by what a person knows of it, and the drill-down shows the days asked for."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from mdms.core.localtime import local_midnight
from mdms.core.models import Customer, Meter, Premise
from mdms.core.testing import make_consumer, make_grid
from monitoring.models import OutageIncident
from portal.tests.conftest import log_in
from portal.tests.usage_data import store_days

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]


def _incidents(feeder_code: str, count: int, first: dt.datetime) -> None:
    feeder = make_grid(feeder_code)
    OutageIncident.objects.bulk_create(
        [
            OutageIncident(
                feeder=feeder,
                region=feeder.region,
                status=OutageIncident.Status.CLOSED,
                started_at=first + dt.timedelta(hours=6 * n),
                ended_at=first + dt.timedelta(hours=6 * n, minutes=40),
                affected_meters=3,
                affected_customers=2,
            )
            for n in range(count)
        ]
    )


def test_the_outages_list_pages_filters_and_exports_what_it_shows(
    live_server: Any, browser_page: Any, olivia: Any, tmp_path: Path
) -> None:
    first = local_midnight(timezone.localdate() - dt.timedelta(days=40))
    _incidents("north", 45, first)
    _incidents("south", 30, first)

    log_in(browser_page, live_server.url, "olivia", "olivia-pw")
    browser_page.click("header nav a:text('Outages')")
    browser_page.wait_for_selector("#incidents")
    assert browser_page.locator("#incidents tbody tr").count() == 50
    assert browser_page.locator(".pager-count").first.text_content() == "1 to 50 of 75"
    assert browser_page.evaluate("document.documentElement.scrollHeight") < 6000  # not 22,309 px
    browser_page.click("a[rel=next]")
    browser_page.wait_for_selector("text=51 to 75 of 75")
    assert browser_page.locator("#incidents tbody tr").count() == 25

    since = timezone.localdate() - dt.timedelta(days=35)
    expected = OutageIncident.objects.filter(feeder__code="north-f1", started_at__gte=local_midnight(since)).count()
    assert 20 < expected < 45
    browser_page.select_option("select[name=feeder]", label="north feeder 1 (north)")
    browser_page.fill("input[name=started_from]", since.isoformat())
    browser_page.click("form.filters button[type=submit]")
    browser_page.wait_for_selector(f"text=1 to {expected} of {expected}")
    shown = browser_page.locator("#incidents tbody tr").count()
    assert shown == expected

    with browser_page.expect_download() as download:
        browser_page.click("a.csv")
    path = tmp_path / "outages.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == shown
    assert {row["feeder"] for row in rows} == {"north-f1"}
    shown_ids = browser_page.locator("#incidents tbody tr td:first-child").all_text_contents()
    assert [f"#{row['incident']}" for row in rows] == [text.strip() for text in shown_ids]


def test_an_operator_finds_a_meter_by_customer_address_feeder_and_state(
    live_server: Any, browser_page: Any, olivia: Any, mongo: Any
) -> None:
    nora = make_consumer("nora")
    Customer.objects.filter(pk=nora.customer.pk).update(name="Nora Quillfeather", email="nora.q@example.org")
    Premise.objects.filter(pk=nora.account.premise_id).update(address="7 Rue des Lilas", city="Villeurbanne")
    omar = make_consumer("omar")
    Meter.objects.filter(pk=omar.meter.pk).update(status=Meter.Status.DISABLED)

    log_in(browser_page, live_server.url, "olivia", "olivia-pw")
    browser_page.click("header nav a:text('Meters')")
    for query, serial in [("quillfeather", nora.meter.serial), ("rue des lilas", nora.meter.serial),
                          ("villeurbanne", nora.meter.serial), (omar.meter.serial.lower(), omar.meter.serial)]:  # fmt: skip
        browser_page.fill("input[name=q]", query)
        browser_page.click("form[role=search] button[type=submit]")
        browser_page.wait_for_selector("#meters")
        assert browser_page.locator("#meters tbody tr td:first-child").all_text_contents() == [serial], query

    browser_page.fill("input[name=q]", "test-f1")  # the feeder both are on
    browser_page.select_option("select[name=status]", "disabled")
    browser_page.click("form[role=search] button[type=submit]")
    browser_page.wait_for_selector("#meters")
    assert browser_page.locator("#meters tbody tr td:first-child").all_text_contents() == [omar.meter.serial]

    browser_page.fill("input[name=q]", "nobody-has-this")
    browser_page.click("form[role=search] button[type=submit]")
    browser_page.wait_for_selector("text=No meter matches")

    browser_page.fill("input[name=q]", "Quillfeather")
    browser_page.select_option("select[name=status]", "")
    browser_page.click("form[role=search] button[type=submit]")
    browser_page.click(f"#meters a:text('{nora.meter.serial}')")
    browser_page.wait_for_selector(f"h1:has-text('Meter {nora.meter.serial}')")


def test_the_drilldown_shows_the_chosen_days_and_says_so_when_there_are_none(
    live_server: Any, browser_page: Any, olivia: Any, mongo: Any
) -> None:
    pia = make_consumer("pia")
    today = timezone.localdate()
    first = today - dt.timedelta(days=20)
    store_days(pia.meter, first, first + dt.timedelta(days=3), import_kwh=0.2)

    log_in(browser_page, live_server.url, "olivia", "olivia-pw")
    browser_page.goto(f"{live_server.url}/operator/meters/{pia.meter.pk}/")
    # Yesterday and today have no readings: no empty chart on a "Jan 2000" axis, but the reason and a way on.
    browser_page.wait_for_selector("#no-readings")
    assert browser_page.locator("#meter-chart").count() == 0
    browser_page.click("#no-readings a")  # its newest reading's day
    browser_page.wait_for_selector("#meter-chart .main-svg")
    assert browser_page.input_value("input[name=start]") == (first + dt.timedelta(days=2)).isoformat()

    browser_page.fill("input[name=start]", first.isoformat())
    browser_page.fill("input[name=end]", (first + dt.timedelta(days=1)).isoformat())
    browser_page.click("#range-form button[type=submit]")
    browser_page.wait_for_selector("#meter-chart .main-svg")
    assert "192 readings" in (browser_page.text_content("#range-note") or "")
    axis = browser_page.eval_on_selector("#meter-chart", "el => el.layout.xaxis.range")
    assert str(axis[0]).startswith(first.isoformat()) and str(axis[1]).startswith(
        (first + dt.timedelta(days=2)).isoformat()
    )

    browser_page.fill("input[name=start]", (today - dt.timedelta(days=200)).isoformat())
    browser_page.fill("input[name=end]", today.isoformat())
    browser_page.click("#range-form button[type=submit]")
    browser_page.wait_for_selector("text=Choose at most 6 months at a time.")
