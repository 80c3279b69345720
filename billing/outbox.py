"""Billing determinants for the CIS: rows per account, and the batch files of the outbox.

The accounts of a date are those whose bill-cycle day it is. An account already billed for the
period gives the determinants of its current bill (what was charged, with the bill's version);
one not yet billed gives determinants computed now, marked unbilled.

Files: BILLDET_{YYYYMMDD}_{batch:03d}.csv in settings.BILLING_OUTBOX_DIR, a header row, accounts in
number order. Nothing in a file depends on when it was written, and each file is written to a
temporary name and renamed, so a re-run writes identical files and a reader never sees half a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from billing import determinants as det
from billing.billable_usage import accounts_due, determinants_for, terms_cache
from billing.models import Bill
from mdms.core.models import Account

BATCH_SIZE = 1000
COLUMNS = [
    "account_number",
    "bill_cycle_day",
    "period_start",
    "period_end",
    "billed_start",
    "billed_end",
    "cycle_days",
    "billed_days",
    "import_kwh",
    "export_kwh",
    "net_kwh",
    "estimated_kwh",
    "estimated_share",
    "multiplier",
    "max_demand_kw",
    "max_demand_at",
    "intervals_expected",
    "intervals_missing",
    "energy_by_period",
    "billed",
    "bill_version",
    "bill_total",
    "currency",
    "error",
]


def determinant_rows(run_date: dt.date, accounts: Sequence[Account]) -> list[dict[str, Any]]:
    """One row per account (in the order given) for the period billed on run_date."""
    period_start, period_end = det.cycle_period(run_date)
    bills = {
        bill.account_id: bill
        for bill in Bill.objects.filter(
            account__in=accounts,
            is_current=True,
            kind=Bill.Kind.CYCLE,
            period_start__gte=period_start,
            period_end__lte=period_end,
        )
    }
    unbilled = [a for a in accounts if a.pk not in bills]
    windows = {
        a.pk: det.Window.for_account(
            period_start=period_start, period_end=period_end, move_in=a.move_in_date, move_out=a.move_out_date
        )
        for a in unbilled
    }
    computed = determinants_for(unbilled, windows, terms_cache())
    rows = []
    for account in accounts:
        row: dict[str, Any] = {"account_number": account.number, "bill_cycle_day": account.bill_cycle_day}
        bill = bills.get(account.pk)
        if bill is not None:
            row.update(bill.determinants)
            row.update(billed=True, bill_version=bill.version, bill_total=str(bill.total), currency=bill.currency)
        else:
            outcome = computed[account.pk]
            row.update(billed=False, bill_version=None, bill_total=None, currency=account.tariff.currency)
            if isinstance(outcome, Exception):
                row["error"] = f"{type(outcome).__name__}: {outcome}"
            else:
                row.update(outcome.as_json())
        rows.append(row)
    return rows


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ";".join(f"{key}={value[key]}" for key in sorted(value))
    return str(value)


def batch_name(run_date: dt.date, batch: int) -> str:
    return f"BILLDET_{run_date:%Y%m%d}_{batch:03d}.csv"


def outbox_write(*, run_date: dt.date, batch_size: int = BATCH_SIZE, directory: str | Path | None = None) -> list[Path]:
    """Write the determinants of the accounts due on run_date as batch files; returns their paths."""
    outbox = Path(directory or settings.BILLING_OUTBOX_DIR)
    outbox.mkdir(parents=True, exist_ok=True)
    accounts = accounts_due(run_date)
    paths = []
    for batch, offset in enumerate(range(0, len(accounts), batch_size), start=1):
        rows = determinant_rows(run_date, accounts[offset : offset + batch_size])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_csv_value(row.get(column)) for column in COLUMNS])
        path = outbox / batch_name(run_date, batch)
        temporary = path.with_suffix(".csv.tmp")
        temporary.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(temporary, path)
        paths.append(path)
    # A re-run with fewer accounts must not leave a stale batch behind.
    for stale in outbox.glob(f"BILLDET_{run_date:%Y%m%d}_*.csv"):
        if stale not in paths:
            stale.unlink()
    return paths
