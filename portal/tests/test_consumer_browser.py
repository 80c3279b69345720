"""The consumer dashboard in a real browser (headless Chromium) against a live server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from mdms.core.testing import Person, make_consumer
from portal.tests.conftest import PHONE, log_in, screenshot
from portal.tests.usage_data import make_bill, store_household

# The live server runs in another thread: it sees committed data only (transaction=True).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]

# Points in every trace of a Plotly graph div, as the browser sees them after drawing.
TRACE_POINTS = "el => (el.data || []).map(trace => (trace.y || trace.z || []).length)"


def test_a_consumer_logs_in_and_sees_the_usage_chart_with_data(
    live_server: Any, browser_page: Any, alice: Person, mongo: Any
) -> None:
    today = timezone.localdate()
    store_household(alice.meter, today - dt.timedelta(days=14), today + dt.timedelta(days=1))

    log_in(browser_page, live_server.url, "alice", "alice-pw")
    browser_page.click(f"a[href='/meters/{alice.meter.pk}/']")
    browser_page.wait_for_selector("#daily-chart .main-svg")

    points = browser_page.eval_on_selector("#daily-chart", TRACE_POINTS)
    assert points[0] >= 14  # measured import, one bar per day
    drawn_bars = browser_page.locator("#daily-chart .bars path").count()
    assert drawn_bars >= 14
    assert (browser_page.locator("#daily-chart .gtitle").text_content() or "").startswith("Daily energy")
    assert browser_page.eval_on_selector("#heatmap-chart", TRACE_POINTS) == [24]


def test_a_consumer_opening_another_customers_dashboard_gets_not_found(
    live_server: Any, browser_page: Any, alice: Person, bob: Person
) -> None:
    log_in(browser_page, live_server.url, "alice", "alice-pw")

    response = browser_page.goto(f"{live_server.url}/meters/{bob.meter.pk}/")

    assert response.status == 404
    assert bob.meter.serial not in browser_page.content()


def test_todays_power_refreshes_on_its_own(live_server: Any, browser_page: Any, alice: Person, mongo: Any) -> None:
    log_in(browser_page, live_server.url, "alice", "alice-pw")
    browser_page.goto(f"{live_server.url}/meters/{alice.meter.pk}/")
    browser_page.wait_for_selector("#today-chart .main-svg")

    with browser_page.expect_response(lambda r: r.url.endswith("/today.json") and r.status == 200, timeout=45_000):
        pass  # the page polls by itself every refresh period, without a reload


def test_dashboard_screenshots_desktop_and_phone(live_server: Any, browser_page: Any, mongo: Any) -> None:
    """Always checks the phone layout does not overflow sideways; saves the pictures with MDMS_SCREENSHOTS=1."""
    sol = make_consumer("sol", has_solar=True)
    today = timezone.localdate()
    # Six months and the same months a year earlier, so the comparison bars show too.
    recent = [today - dt.timedelta(days=n) for n in (9, 23, 24, 60)]  # days the meter was silent, estimated
    store_household(
        sol.meter, today - dt.timedelta(days=190), today + dt.timedelta(days=1), solar=True, estimated_days=recent
    )
    store_household(sol.meter, today - dt.timedelta(days=365 + 190), today - dt.timedelta(days=365 - 31), solar=True)

    for months_ago in (3, 2, 1):
        month = (today.replace(day=1) - dt.timedelta(days=28 * months_ago - 14)).replace(day=1)
        make_bill(sol, period_start=month, energy_kwh=str(180 + 40 * months_ago))

    log_in(browser_page, live_server.url, "sol", "sol-pw")
    browser_page.goto(f"{live_server.url}/meters/{sol.meter.pk}/")
    browser_page.click("#bills details summary")  # the newest bill's line items, open
    browser_page.wait_for_selector("#heatmap-chart .main-svg")
    screenshot(browser_page, "consumer-desktop")

    browser_page.set_viewport_size(PHONE)
    browser_page.wait_for_timeout(500)  # Plotly's responsive resize
    overflow = browser_page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    assert browser_page.locator("#bills a[href^='/bills/']").first.is_visible()
    link_right = browser_page.eval_on_selector("#bills a[href^='/bills/']", "a => a.getBoundingClientRect().right")
    assert link_right <= PHONE["width"]  # the bill link is on screen, not scrolled away inside its card
    screenshot(browser_page, "consumer-phone")
