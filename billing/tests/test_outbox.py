"""Determinants for the CIS: the outbox batch files (the API's pages: portal/tests/test_api_billing.py)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill
from billing.outbox import outbox_write
from billing.tests.bills_helpers import september_billed_on_the_first

pytestmark = pytest.mark.django_db
OCT = dt.date(2026, 10, 1)


@pytest.fixture
def september(alice: Any, bob: Any, mongo: Any) -> list[Any]:
    return september_billed_on_the_first(alice, bob)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_date_nobody_fetched_reads_for_goes_out_whole_in_batch_one(september: list[Any], tmp_path: Path) -> None:
    paths = outbox_write(run_date=OCT, directory=tmp_path)
    assert [p.name for p in paths] == ["BILLDET_20261001_001.csv"]
    assert paths[0].read_text().splitlines()[0].startswith("account_number,bill_cycle_day,period_start")
    first = rows(paths[0])
    assert [r["account_number"] for r in first] == ["ACC-ALICE", "ACC-BOB", "ACC-CAROL"]
    assert first[0]["import_kwh"] == "720.000" and first[0]["intervals_missing"] == "0"
    assert first[0]["billed"] == "false" and first[0]["period_start"] == "2026-09-01"
    assert {r["batch"] for r in first} == {"1"} and {r["final_batch"] for r in first} == {"false"}


def test_a_rerun_writes_identical_files_and_removes_stale_batches(september: list[Any], tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in outbox_write(run_date=OCT, directory=tmp_path)}
    again = {p.name: p.read_bytes() for p in outbox_write(run_date=OCT, directory=tmp_path)}
    assert again == first
    (tmp_path / "BILLDET_20261001_002.csv").write_text("left over from an earlier judgement\n")
    outbox_write(run_date=OCT, directory=tmp_path)
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
