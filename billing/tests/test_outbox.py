"""Determinants for the CIS: the outbox batch files and the paginated API."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill
from billing.outbox import outbox_write
from billing.tests.bills_helpers import constant, readings, store_and_roll_up
from mdms.core.testing import make_consumer

pytestmark = pytest.mark.django_db
SEP, OCT = dt.date(2026, 9, 1), dt.date(2026, 10, 1)


@pytest.fixture
def september(alice: Any, bob: Any, mongo: Any) -> list[Any]:
    """Three accounts billed on 1 October with a complete September, and one billed on the 15th."""
    carol = make_consumer("carol")
    make_consumer("dan", bill_cycle_day=15)
    people = [alice, bob, carol]
    documents: list[dict[str, Any]] = []
    for n, person in enumerate(people, start=1):  # alice 720 kWh, bob 1,440, carol 2,160
        documents += readings(person.meter.pk, SEP, OCT, constant(0.25 * n))
    store_and_roll_up(documents, [p.meter.pk for p in people], SEP, OCT)
    return people


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_outbox_writes_named_batches_with_a_header_row(september: list[Any], tmp_path: Path) -> None:
    paths = outbox_write(run_date=OCT, batch_size=2, directory=tmp_path)
    assert [p.name for p in paths] == ["BILLDET_20261001_001.csv", "BILLDET_20261001_002.csv"]
    assert paths[0].read_text().splitlines()[0].startswith("account_number,bill_cycle_day,period_start")
    first, second = rows(paths[0]), rows(paths[1])
    assert [r["account_number"] for r in first + second] == ["ACC-ALICE", "ACC-BOB", "ACC-CAROL"]
    assert first[0]["import_kwh"] == "720.000" and first[0]["intervals_missing"] == "0"
    assert first[0]["billed"] == "false" and first[0]["period_start"] == "2026-09-01"


def test_a_rerun_writes_identical_files_and_removes_stale_batches(september: list[Any], tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in outbox_write(run_date=OCT, batch_size=2, directory=tmp_path)}
    again = {p.name: p.read_bytes() for p in outbox_write(run_date=OCT, batch_size=2, directory=tmp_path)}
    assert again == first
    outbox_write(run_date=OCT, batch_size=10, directory=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BILLDET_20261001_001.csv"]


def test_billed_accounts_give_the_determinants_of_their_current_bill(september: list[Any], tmp_path: Path) -> None:
    bill_run_execute(run=bill_run_create(run_date=OCT))
    (path,) = outbox_write(run_date=OCT, directory=tmp_path)
    by_account = {r["account_number"]: r for r in rows(path)}
    bill = Bill.objects.get(account__number="ACC-BOB")
    assert by_account["ACC-BOB"]["billed"] == "true"
    assert by_account["ACC-BOB"]["bill_version"] == "1"
    assert by_account["ACC-BOB"]["import_kwh"] == str(bill.import_kwh) == "1440.000"
    assert by_account["ACC-BOB"]["bill_total"] == str(bill.total)


@pytest.mark.urls("billing.tests.urls")
def test_the_api_pages_the_determinants_of_a_billing_date(september: list[Any], bill: Any, client: Client) -> None:
    client.force_login(bill)
    page = client.get("/api/v1/billing/determinants/", {"date": "2026-10-01", "page_size": "2"}).json()
    assert page["count"] == 3 and page["next"] is not None
    assert [r["account_number"] for r in page["results"]] == ["ACC-ALICE", "ACC-BOB"]
    assert page["results"][1]["import_kwh"] == "1440.000"
    rest = client.get(page["next"]).json()
    assert [r["account_number"] for r in rest["results"]] == ["ACC-CAROL"]
    mid = client.get("/api/v1/billing/determinants/", {"date": "2026-10-15"}).json()
    assert [r["account_number"] for r in mid["results"]] == ["ACC-DAN"]


@pytest.mark.urls("billing.tests.urls")
def test_the_determinants_api_is_for_billing_staff_only(september: list[Any], client: Client) -> None:
    client.force_login(september[0].user)
    assert client.get("/api/v1/billing/determinants/", {"date": "2026-10-01"}).status_code == 403
    client.logout()
    assert client.get("/api/v1/billing/determinants/", {"date": "2026-10-01"}).status_code == 403


@pytest.mark.urls("billing.tests.urls")
def test_the_determinants_api_refuses_a_day_no_account_can_have(bill: Any, client: Client) -> None:
    client.force_login(bill)
    response = client.get("/api/v1/billing/determinants/", {"date": "2026-10-30"})
    # The API's one error format (portal.api.errors), which these older routes share.
    assert response.status_code == 400 and response.json()["error"]["field"] == "date"


@pytest.mark.urls("billing.tests.urls")
def test_billing_staff_request_an_on_demand_read_over_the_api(alice: Any, bill: Any, client: Client) -> None:
    client.force_login(bill)
    created = client.post("/api/v1/billing/reads/", {"meter": alice.meter.serial, "purpose": "move_out",
                                                     "account": alice.account.number}, content_type="application/json")  # fmt: skip
    assert created.status_code == 201
    body = created.json()
    assert (body["meter"], body["account"], body["purpose"], body["status"]) == (
        alice.meter.serial, alice.account.number, "move_out", "pending",
    )  # fmt: skip
    listed = client.get("/api/v1/billing/reads/", {"status": "pending"}).json()
    assert [r["id"] for r in listed["results"]] == [body["id"]]
    assert client.get(f"/api/v1/billing/reads/{body['id']}/").json()["status"] == "pending"


def test_every_cycle_run_and_rebill_writes_the_billdet_files(
    september: list[Any], bill: Any, tmp_path: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BILLING_OUTBOX_DIR = str(tmp_path / "outbox")
    bill_run_execute(run=bill_run_create(run_date=OCT))
    path = tmp_path / "outbox" / "BILLDET_20261001_001.csv"
    by_account = {r["account_number"]: r for r in rows(path)}
    assert {r["billed"] for r in by_account.values()} == {"true"}
    assert by_account["ACC-BOB"]["bill_version"] == "1"
    first = path.read_bytes()
    bill_run_execute(run=bill_run_create(run_date=OCT))  # a second run bills nobody and writes the same file
    assert path.read_bytes() == first

    from billing.bills import bill_rebill

    with django_capture_on_commit_callbacks(execute=True):
        bill_rebill(bill=Bill.objects.get(account__number="ACC-BOB"), reason="meter multiplier", created_by=bill)
    assert {r["account_number"]: r for r in rows(path)}["ACC-BOB"]["bill_version"] == "2"
