"""The operator dashboard in a real browser (headless Chromium) against a live server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from mdms.core.testing import make_consumer
from monitoring.outages import outages_apply_events
from portal.tests.conftest import PHONE, log_in, screenshot
from portal.tests.usage_data import store_days

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]

OUT_POINTS = "el => (el.data.find(t => t.meta === 'out') || {x: []}).x.length"


def test_an_operator_sees_an_injected_outage_on_the_map_and_in_the_incident_list(
    live_server: Any, browser_page: Any, olivia: Any, mongo: Any
) -> None:
    today = timezone.localdate()
    people = [make_consumer(name) for name in ("ann", "ben", "cat", "dan")]
    for k, person in enumerate(people):
        store_days(person.meter, today - dt.timedelta(days=6), today + dt.timedelta(days=1), import_kwh=0.2 + 0.05 * k)
    now = timezone.now()
    # Two last gasps on one feeder: the monitoring service opens one incident for both.
    events = [{"meter": p.meter.pk, "ts": now - dt.timedelta(minutes=3), "type": "power_off"} for p in people[:2]]
    outages_apply_events(events=events, touched={})

    log_in(browser_page, live_server.url, "olivia", "olivia-pw")
    browser_page.click("header nav a[href='/operator/']")
    browser_page.wait_for_selector("#map-chart .main-svg")

    assert browser_page.eval_on_selector("#map-chart", OUT_POINTS) == 2
    assert browser_page.locator("#map-chart .scatterlayer .trace .point").count() == 4
    assert browser_page.locator("#incidents tr.incident").count() == 1
    assert browser_page.locator("#incidents tr.incident td.num").first.text_content() == "2"
    assert browser_page.locator("#count-out").text_content() == "2"
    browser_page.wait_for_selector("#utilisation-chart .main-svg")
    screenshot(browser_page, "operator-dashboard")

    browser_page.click("#incidents tr.incident a")
    browser_page.wait_for_selector("text=still out")
    assert browser_page.locator("text=still out").count() == 2
    screenshot(browser_page, "operator-outages")

    browser_page.goto(f"{live_server.url}/operator/ingest/")
    screenshot(browser_page, "operator-ingest")

    browser_page.goto(f"{live_server.url}/operator/meters/{people[2].meter.pk}/")
    browser_page.wait_for_selector("#meter-chart .main-svg")
    screenshot(browser_page, "operator-meter")

    browser_page.set_viewport_size(PHONE)
    browser_page.goto(f"{live_server.url}/operator/")
    browser_page.wait_for_selector("#map-chart .main-svg")
    overflow = browser_page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
