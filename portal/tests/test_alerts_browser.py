"""A consumer, in a real browser: sees the projected bill, sets an alert (after a mistake), reads what it told."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from alerts import services
from alerts.tests.helpers import store
from mdms.core.testing import Person
from portal.tests.conftest import PHONE, log_in, screenshot


def _household(ts: dt.datetime) -> float:
    hour = timezone.localtime(ts).hour
    return round(0.1 + 0.25 * math.exp(-((hour - 19.5) ** 2) / 3) + 0.04 * math.sin(ts.timestamp() / 7000), 4)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("role_groups")
def test_a_consumer_sets_an_alert_and_reads_its_notification(
    live_server: Any, browser_page: Any, alice: Person, mongo: Any
) -> None:
    now = timezone.now()
    store(alice.meter.pk, now - dt.timedelta(days=40), now - dt.timedelta(minutes=30), kwh=_household)
    page = browser_page
    log_in(page, live_server.url, "alice", "alice-pw")

    page.goto(f"{live_server.url}/meters/{alice.meter.pk}/")
    card = page.locator("#projection")
    assert "EUR" in card.locator("#projected-bill").inner_text()
    assert card.locator(".projection-bar .band").count() == 1
    screenshot(page, "consumer-projected-bill")

    page.click("text=Alerts")
    page.select_option("select[name=kind]", "power_over")
    page.fill("input[name=threshold]", "3")
    page.fill("input[name=minutes]", "2000")
    page.click("button:has-text('Add alert')")
    assert "Enter from 1 to 1440 minutes" in page.locator("form.rule-form").inner_text()
    page.fill("input[name=minutes]", "30")
    page.click("button:has-text('Add alert')")
    assert "Power above 3.00 kW for 30 minutes or more" in page.locator("table.rules").inner_text()

    # Yesterday's usage was well above 1 kWh: the beat job tells it once.
    services.rule_create(
        user=alice.user, meter=alice.meter, kind="daily_kwh", threshold=Decimal("1"), minutes=None,
        now=now - dt.timedelta(days=2),
    )  # fmt: skip
    services.rules_evaluate_due(now=now)
    services.notification_emails_send(now=now)
    page.reload()
    screenshot(page, "consumer-alerts")
    badge = page.locator("#notifications-link .unread-count")
    unread = int(badge.inner_text())
    assert unread >= 1

    page.click("#notifications-link")
    assert page.locator(".notifications li.unread").count() == unread
    screenshot(page, "consumer-notifications")
    page.click("button:has-text('Mark all read')")
    assert page.locator(".notifications li.unread").count() == 0
    assert page.locator("#notifications-link .unread-count").count() == 0

    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/meters/{alice.meter.pk}/alerts/")
    # Nothing sticks out sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("role_groups")
def test_an_operator_sees_the_notification_volume(
    live_server: Any, browser_page: Any, alice: Person, olivia: Any, mongo: Any
) -> None:
    now = timezone.now()
    store(alice.meter.pk, now - dt.timedelta(days=3), now - dt.timedelta(minutes=30), kwh=_household)
    services.rule_create(
        user=alice.user, meter=alice.meter, kind="daily_kwh", threshold=Decimal("1"), minutes=None,
        now=now - dt.timedelta(days=2),
    )  # fmt: skip
    services.rules_evaluate_due(now=now)
    log_in(browser_page, live_server.url, "olivia", "olivia-pw")
    browser_page.goto(f"{live_server.url}/operator/")
    browser_page.click("header nav a[href='/operator/notifications/']")
    total = int(browser_page.locator("#volume-total").inner_text())
    assert total >= 1
    today = timezone.localdate().isoformat()
    assert browser_page.locator(f"tr[data-day='{today}'] strong").inner_text() != "0"
    screenshot(browser_page, "operator-notifications")
