"""Billing staff follow a bill to the intervals behind it, in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill
from mdms.core.testing import make_consumer
from portal.tests.conftest import log_in, screenshot
from portal.tests.test_reading_quality import DEC, the_month

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("role_groups"),
]


def test_billing_staff_open_the_estimated_intervals_behind_a_bill(
    live_server: Any, browser_page: Any, bill: Any, mongo: Any
) -> None:
    quinn = make_consumer("quinn")
    the_month(quinn, bill)
    issued = Bill.objects.get(run=bill_run_execute(run=bill_run_create(run_date=DEC)), account=quinn.account)

    log_in(browser_page, live_server.url, "bill", "bill-pw")
    browser_page.goto(f"{live_server.url}/billing/bills/{issued.pk}/")
    assert browser_page.locator("#quality tbody tr").count() == 8  # every code of the month but legacy "estimated"
    screenshot(browser_page, "billing-bill-quality")
    browser_page.click("#bill-intervals-link")
    browser_page.select_option("#intervals select[name=quality]", "estimated")
    browser_page.click("#intervals button[type=submit]")

    assert browser_page.locator("#quality-summary tfoot th").all_text_contents() == ["Total", "39", "", "8.200"]
    assert browser_page.locator("#intervals tbody tr").count() == 39
    assert browser_page.locator("#intervals td", has_text="method reference_day").count() == 4
    screenshot(browser_page, "billing-bill-intervals")
