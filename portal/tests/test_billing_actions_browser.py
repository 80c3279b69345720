"""Billing staff's new buttons in a real browser: cancel a wrong bill, start the run of a date (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from billing.models import Bill, BillingRun
from mdms.core.models import AuditLog
from mdms.core.testing import make_consumer
from portal.api.testing import make_bill
from portal.tests.conftest import log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("role_groups"),
]


def test_billing_staff_cancel_a_bill_from_its_page(live_server: Any, browser_page: Any, bill: Any) -> None:
    grace = make_consumer("grace")
    wrong = make_bill(grace)
    log_in(browser_page, live_server.url, "bill", "bill-pw")
    browser_page.goto(f"{live_server.url}/billing/accounts/{grace.account.pk}/")
    browser_page.click(f"a[href='/billing/bills/{wrong.pk}/']")
    browser_page.fill("#cancel input[name=reason]", "issued on the wrong account")
    browser_page.click("#cancel button[type=submit]")
    browser_page.wait_for_selector("#bill-cancelled")
    assert "issued on the wrong account" in (browser_page.text_content("#bill-cancelled") or "")
    assert browser_page.locator("#cancel").count() == 0  # nothing left to cancel
    wrong.refresh_from_db()
    assert wrong.cancelled_at is not None and not wrong.is_current
    assert AuditLog.objects.filter(action=AuditLog.Action.BILL_CANCEL, target=f"bill:{wrong.pk}").exists()
    browser_page.goto(f"{live_server.url}/billing/accounts/{grace.account.pk}/")
    assert "cancelled" in (browser_page.text_content("main") or "")


def test_billing_staff_start_the_run_of_a_date(live_server: Any, browser_page: Any, bill: Any) -> None:
    log_in(browser_page, live_server.url, "bill", "bill-pw")
    browser_page.goto(f"{live_server.url}/billing/")
    browser_page.fill("#start-run input[name=run_date]", "2026-11-08")
    browser_page.click("#start-run button[type=submit]")
    browser_page.wait_for_selector(".messages")
    assert "queued" in (browser_page.text_content(".messages") or "")
    run = BillingRun.objects.get()
    assert (str(run.run_date), run.created_by) == ("2026-11-08", bill)
    assert browser_page.locator(f"#run-{run.pk}").count() == 1
    # A date no run may have is refused, with the reason on the page.
    browser_page.fill("#start-run input[name=run_date]", "2026-11-30")
    browser_page.click("#start-run button[type=submit]")
    browser_page.wait_for_selector(".messages")
    assert "1 to 28" in (browser_page.text_content(".messages") or "")
    assert BillingRun.objects.count() == 1 and not Bill.objects.exists()
