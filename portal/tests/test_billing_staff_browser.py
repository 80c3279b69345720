"""Billing staff's pages in a real browser: an on-demand read answered by a meter on the real broker."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.utils import timezone

from billing.models import BillingRun, VeeException
from billing.tests.test_reads import AnsweringMeter, wait_for, worker  # noqa: F401 - worker is a fixture
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as stored
from portal.tests.conftest import log_in, screenshot
from portal.tests.usage_data import store_days

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("role_groups"),
]


def test_billing_staff_request_an_on_demand_read_and_watch_it_complete(
    live_server: Any,
    browser_page: Any,
    bill: Any,
    worker: Any,  # noqa: F811 - the imported fixture
) -> None:
    grace = make_consumer("grace")
    meter = AnsweringMeter(grace, register_import_kwh=5432.125)
    try:
        log_in(browser_page, live_server.url, "bill", "bill-pw")
        browser_page.click("header nav a[href='/billing/reads/']")
        browser_page.fill("#read-form input[name=meter]", grace.meter.serial)
        browser_page.click("#read-form button[type=submit]")
        browser_page.wait_for_selector("#reads-live tr.read-pending")
        wait_for(lambda: bool(meter.commands), what="the command at the meter")
        # Another ingest worker on this broker may take the reply: resend until ours has it (see test_reads).
        deadline = time.monotonic() + 30
        while stored.reply_for(grace.meter.pk, meter.commands[0]["id"]) is None and time.monotonic() < deadline:
            meter.send_reply()
            time.sleep(1)
        # No reload: the list polls by itself and shows the read completed.
        browser_page.wait_for_selector("#reads-live tr.read-completed", timeout=20_000)
    finally:
        meter.close()
    row = browser_page.locator("#reads-live tr.read-completed").first
    assert "5432.125 kWh" in (row.text_content() or "")
    screenshot(browser_page, "billing-reads")


def test_billing_pages_screenshots(live_server: Any, browser_page: Any, bill: Any, mongo: Any) -> None:
    """Runs with progress, the exception queue and a meter's history render; pictures with MDMS_SCREENSHOTS=1."""
    today = timezone.localdate()
    hana = make_consumer("hana")
    store_days(hana.meter, today - dt.timedelta(days=10), today + dt.timedelta(days=1))
    BillingRun.objects.create(run_date=today - dt.timedelta(days=1), cycle_day=today.day, period_start=today.replace(day=1),
                              period_end=today, status=BillingRun.Status.COMPLETED, total=120, done=120,
                              bills_created=118, already_billed=1, failed=1,
                              errors=[{"account": "ACC-0042", "error": "tariff has no rate for this period"}])  # fmt: skip
    running = BillingRun.objects.create(run_date=today, cycle_day=today.day, period_start=today.replace(day=1),
                                        period_end=today, status=BillingRun.Status.RUNNING, total=400, done=150)  # fmt: skip
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=5)
    exception = VeeException.objects.create(meter=hana.meter, kind=VeeException.Kind.SPIKE, period_start=start,
                                            period_end=start + dt.timedelta(minutes=15),
                                            detail={"import_kwh": 9.5, "history_mean_kwh": 0.25})  # fmt: skip

    log_in(browser_page, live_server.url, "bill", "bill-pw")
    browser_page.goto(f"{live_server.url}/billing/")
    assert browser_page.locator(f"#run-{running.pk} .progress-text").text_content() == "150 / 400"
    BillingRun.objects.filter(pk=running.pk).update(done=300)
    browser_page.wait_for_function(
        f"document.querySelector('#run-{running.pk} .progress-text').textContent === '300 / 400'", timeout=10_000
    )
    screenshot(browser_page, "billing-runs")

    browser_page.goto(f"{live_server.url}/billing/exceptions/")
    screenshot(browser_page, "billing-exceptions")
    browser_page.click(f"a[href='/billing/exceptions/{exception.pk}/']")
    browser_page.fill("input[name=edit-import_kwh]", "0.3")
    browser_page.fill("input[name=edit-reason]", "meter reset spike, customer confirmed")
    browser_page.click("form:has(input[value=edit]) button[type=submit]")
    assert browser_page.locator("#audit td", has_text="meter reset spike").count() == 1
    screenshot(browser_page, "billing-exception")

    browser_page.goto(f"{live_server.url}/billing/lookup/?q={hana.meter.serial}")
    browser_page.click(f"a[href='/billing/meters/{hana.meter.pk}/']")
    screenshot(browser_page, "billing-meter")


def test_billing_staff_see_each_delivery_to_the_cis_with_its_attempts(
    live_server: Any, browser_page: Any, bill: Any, mongo: Any, settings: Any, tmp_path: Any
) -> None:
    """Real SFTP: the server is down, then back for one file, while the other meets a wrong host key."""
    import asyncssh

    from billing.delivery import delivery_attempt, outbox_sweep
    from billing.models import OutboxDelivery
    from billing.outbox import outbox_write
    from billing.tests.bills_helpers import constant, readings, release_in_batches, store_and_roll_up
    from billing.tests.sftp_server import SftpServer

    sep, oct_ = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
    people = [make_consumer(name) for name in ("ines", "jon", "kim")]
    documents = [doc for p in people for doc in readings(p.meter.pk, sep, oct_, constant(0.25))]
    store_and_roll_up(documents, [p.meter.pk for p in people], sep, oct_)
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(tmp_path / "id_ed25519")
    cis = SftpServer(tmp_path / "cis", user="cis", client_public_key=key.export_public_key().decode())
    settings.BILLING_OUTBOX_DIR = str(tmp_path / "outbox")
    settings.BILLING_SFTP_HOST, settings.BILLING_SFTP_PORT, settings.BILLING_SFTP_USER = "127.0.0.1", cis.port, "cis"
    settings.BILLING_SFTP_KEY_FILE, settings.BILLING_SFTP_KNOWN_HOST_KEY = (
        str(tmp_path / "id_ed25519"),
        cis.host_public_key,
    )
    settings.BILLING_SFTP_REMOTE_DIR, settings.BILLING_SFTP_TIMEOUT_S = ".", 5.0
    release_in_batches(oct_, 2)
    outbox_write(run_date=oct_)
    first, second = outbox_sweep().due
    later = timezone.now() + dt.timedelta(minutes=1)  # past the first backoff (30 s)
    try:
        delivery_attempt(delivery_pk=first)  # down
        delivery_attempt(delivery_pk=second)
        cis.start()
        delivery_attempt(delivery_pk=first, now=later)  # back
        settings.BILLING_SFTP_KNOWN_HOST_KEY = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        delivery_attempt(delivery_pk=second, now=later)  # another host key
    finally:
        cis.stop()

    log_in(browser_page, live_server.url, "bill", "bill-pw")
    browser_page.click("header nav a[href='/billing/deliveries/']")
    delivered, refused = browser_page.locator(f"#delivery-{first}"), browser_page.locator(f"#delivery-{second}")
    assert "BILLDET_20261001_001.csv" in (delivered.text_content() or "")
    assert "Delivered" in (delivered.text_content() or "")
    assert "Failed, will retry" in (refused.text_content() or "")
    attempts = browser_page.locator("tr.delivery-attempts", has_text="host key refused")
    assert attempts.count() == 1 and "cannot reach 127.0.0.1" in (attempts.text_content() or "")
    assert OutboxDelivery.objects.get(pk=first).attempts == 2
    screenshot(browser_page, "billing-deliveries")
