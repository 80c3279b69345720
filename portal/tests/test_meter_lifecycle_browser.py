"""Issue 16's pages in a real browser: the exchange form (an error, then the exchange), a re-bill proposal
accepted, and the consumer's chart marking the exchange. Pictures with MDMS_SCREENSHOTS=1."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing.models import Bill, VeeException
from billing.rollups import rollups_rebuild
from billing.tests.test_rebill_proposals import bill_september, send_actuals
from billing.tests.test_rollups import quarters
from mdms.core import services
from mdms.core.localtime import local_midnight, local_today
from mdms.core.models import Meter, MeterExchange
from mdms.core.testing import make_consumer
from mdms.core.timeseries.readings import insert_readings
from portal.tests.conftest import log_in, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("role_groups"),
]


def test_billing_staff_exchange_a_meter_in_the_browser(live_server: Any, browser_page: Any, bill: Any) -> None:
    ivy = make_consumer("ivy")
    log_in(browser_page, live_server.url, "bill", "bill-pw")
    browser_page.goto(f"{live_server.url}/billing/meters/{ivy.meter.pk}/")
    browser_page.click("#exchange-link")
    future = timezone.localtime(timezone.now() + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    browser_page.fill("input[name=new_serial]", "IVY-NEW-01")
    browser_page.fill("input[name=at]", future)
    browser_page.fill("input[name=old_final_register_kwh]", "8123.4")
    browser_page.fill("input[name=new_initial_register_kwh]", "0")
    browser_page.fill("input[name=work_order]", "WO-2026-118")
    browser_page.click("#exchange-form button[type=submit]")
    assert "this time is in the future" in (browser_page.locator("#id_at_error").text_content() or "")
    screenshot(browser_page, "billing-meter-exchange-error")
    assert not MeterExchange.objects.exists()

    at = timezone.localtime(timezone.now() - dt.timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
    browser_page.fill("input[name=at]", at)
    browser_page.click("#exchange-form button[type=submit]")
    password = browser_page.locator("#new-meter-password").text_content() or ""
    assert len(password) >= 16
    screenshot(browser_page, "billing-meter-exchanged")
    assert MeterExchange.objects.get().new_meter.serial == "IVY-NEW-01"


def test_billing_staff_accept_a_rebill_proposal_in_the_browser(
    live_server: Any, browser_page: Any, bill: Any, mongo: Any
) -> None:
    jay = make_consumer("jay")
    issued = bill_september(jay)
    send_actuals(jay.meter.serial, 1.5)
    proposal = VeeException.objects.get(kind=VeeException.Kind.REBILL_PROPOSED)
    log_in(browser_page, live_server.url, "bill", "bill-pw")
    browser_page.goto(f"{live_server.url}/billing/exceptions/?kind=rebill_proposed")
    assert "5.000 kWh, 1.25 EUR" in (browser_page.locator("main table").text_content() or "")
    browser_page.click(f"a[href='/billing/exceptions/{proposal.pk}/']")
    figures = browser_page.locator("#proposal-figures").text_content() or ""
    assert "190.00" in figures and "191.25" in figures
    assert browser_page.locator("#proposal-intervals tbody tr").count() == 4
    screenshot(browser_page, "billing-rebill-proposal")
    browser_page.click("button[value=accept]")
    browser_page.wait_for_url("**/billing/bills/*/")
    new = Bill.objects.get(account=jay.account, is_current=True)
    assert (new.version, new.total, Bill.objects.get(pk=issued.pk).total) == (2, Decimal("191.25"), Decimal("190.00"))


def test_the_consumer_chart_marks_the_exchange(live_server: Any, browser_page: Any, mongo: Any) -> None:
    kim = make_consumer("kim")
    today = local_today()
    at = local_midnight(today - dt.timedelta(days=12)) + dt.timedelta(hours=14)
    services.meter_exchange(
        premise=kim.account.premise, old_meter=kim.meter, new_meter_serial="KIM-NEW", at=at,
        old_final_register_kwh=Decimal("900"), new_initial_register_kwh=Decimal("0"),
    )  # fmt: skip
    new = Meter.objects.get(serial="KIM-NEW")
    insert_readings(quarters(kim.meter.pk, local_midnight(today - dt.timedelta(days=40)), at, kwh=0.25))
    insert_readings(quarters(new.pk, at, local_midnight(today), kwh=0.3))
    rollups_rebuild(first_day=today - dt.timedelta(days=41), end_day=today + dt.timedelta(days=1))
    log_in(browser_page, live_server.url, kim.user.username, f"{kim.user.username}-pw")
    browser_page.goto(f"{live_server.url}/meters/{new.pk}/")
    browser_page.wait_for_selector("#daily-chart .main-svg")
    label = f"Meter exchanged {timezone.localtime(at):%d %b %H:%M}: {kim.meter.serial} → KIM-NEW"
    assert browser_page.locator("#daily-chart .annotation-text", has_text=label).count() == 1
    assert browser_page.locator("#daily-chart .shapelayer path").count() >= 1
    assert "was replaced by KIM-NEW" in (browser_page.locator(".exchange-note").text_content() or "")
    browser_page.locator("#daily-chart").scroll_into_view_if_needed()
    screenshot(browser_page, "consumer-exchange")
