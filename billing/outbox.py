"""Billing determinants for the CIS: rows per account, and the batch files of the outbox.

The accounts of a date are those whose bill-cycle day it is. An account already billed for the
period gives the determinants of its current bill (what was charged, with the bill's version);
one not yet billed gives determinants computed now, marked unbilled.

Files: BILLDET_{YYYYMMDD}_{batch:03d}.csv in settings.BILLING_OUTBOX_DIR, one per released batch
(billing.read_fetch: batch 1 the accounts complete at the lead time, later batches those whose reads
were fetched, the final one the accounts estimated), a header row, accounts in number order. Nothing in a file depends on when it was written, and each file is written to a
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
from billing.billable_usage import determinants_for, terms_cache
from billing.models import Bill, DeterminantDelivery
from billing.read_fetch import deliveries_ensure
from mdms.core.models import Account

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
    "batch",
    "final_batch",
    "closing_read",
    "closing_read_at",
    "closing_register_kwh",
    "error",
    # The billed intervals per quality code and each code's share (mdms.core.reading_quality).
    "intervals_by_quality",
    "quality_share",
]


def determinant_rows(run_date: dt.date, accounts: Sequence[Account]) -> list[dict[str, Any]]:
    """One row per account (in the order given) for the period billed on run_date.

    A billed account's row is its current bill's stored determinants: read as plain values (no model
    instance per bill or delivery), so a page of a thousand billed accounts costs two small queries.
    """
    period_start, period_end = det.cycle_period(run_date)
    pks = [account.pk for account in accounts]
    bills: dict[int, tuple[int, Any, str, dict[str, Any]]] = {
        account_pk: (version, total, currency, determinants)
        for account_pk, version, total, currency, determinants in Bill.objects.filter(
            account_id__in=pks,
            is_current=True,
            kind=Bill.Kind.CYCLE,
            period_start__gte=period_start,
            period_end__lte=period_end,
        )
        .order_by()
        .values_list("account_id", "version", "total", "currency", "determinants")
    }
    unbilled = [a for a in accounts if a.pk not in bills]
    windows = {
        a.pk: det.Window.for_account(
            period_start=period_start, period_end=period_end, move_in=a.move_in_date, move_out=a.move_out_date
        )
        for a in unbilled
    }
    computed = determinants_for(unbilled, windows, terms_cache())
    deliveries = {
        row["account_id"]: row
        for row in DeterminantDelivery.objects.filter(run_date=run_date, account_id__in=pks)
        .order_by()
        .values("account_id", *_DELIVERY_FIELDS)
    }
    rows = []
    for account in accounts:
        row: dict[str, Any] = {"account_number": account.number, "bill_cycle_day": account.bill_cycle_day}
        row.update(_delivery_columns(deliveries.get(account.pk)))
        bill = bills.get(account.pk)
        if bill is not None:
            version, total, currency, determinants = bill
            row.update(determinants)
            row.update(billed=True, bill_version=version, bill_total=str(total), currency=currency)
        else:
            outcome = computed[account.pk]
            row.update(billed=False, bill_version=None, bill_total=None, currency=account.tariff.currency)
            if isinstance(outcome, Exception):
                row["error"] = f"{type(outcome).__name__}: {outcome}"
            else:
                row.update(outcome.as_json())
        rows.append(row)
    return rows


# How the period's closing register read was had, by the account's delivery state.
_CLOSING_READ = {
    DeterminantDelivery.State.COMPLETE: "stored",
    DeterminantDelivery.State.FETCHED: "fetched",
    DeterminantDelivery.State.ESTIMATED: "estimated",
    DeterminantDelivery.State.FETCHING: "pending",
}
_DELIVERY_FIELDS = ("batch", "final_batch", "state", "closing_read_at", "closing_register_kwh")


def _delivery_columns(delivery: dict[str, Any] | None) -> dict[str, Any]:
    """The batch an account's determinants went out in (None: not released yet) and its closing read,
    from a delivery's _DELIVERY_FIELDS."""
    if delivery is None:
        return {"batch": None, "final_batch": False, "closing_read": None}
    closing_read_at, closing_register_kwh = delivery["closing_read_at"], delivery["closing_register_kwh"]
    return {
        "batch": delivery["batch"],
        "final_batch": delivery["final_batch"],
        "closing_read": _CLOSING_READ[DeterminantDelivery.State(delivery["state"])],
        "closing_read_at": closing_read_at.isoformat() if closing_read_at else None,
        "closing_register_kwh": None if closing_register_kwh is None else str(closing_register_kwh),
    }


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


def outbox_write(*, run_date: dt.date, directory: str | Path | None = None) -> list[Path]:
    """Write the determinants of the accounts due on run_date, one file per released batch; returns
    their paths. A date nobody fetched reads for (asked after its run) goes out whole in batch 1."""
    outbox = Path(directory or settings.BILLING_OUTBOX_DIR)
    outbox.mkdir(parents=True, exist_ok=True)
    if not DeterminantDelivery.objects.filter(run_date=run_date).exists():
        deliveries_ensure(run_date)
    released: dict[int, list[int]] = {}
    for batch, account_pk in (  # batch__isnull=False: every row here has a batch
        DeterminantDelivery.objects.filter(run_date=run_date, batch__isnull=False)
        .order_by("batch", "account__number")
        .values_list("batch", "account_id")
    ):
        released.setdefault(batch or 0, []).append(account_pk)
    paths = []
    for batch, account_pks in sorted(released.items()):
        accounts = list(Account.objects.filter(pk__in=account_pks).select_related("tariff").order_by("number"))
        rows = determinant_rows(run_date, accounts)
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
    # A batch that no longer exists (a date judged again) must not leave a stale file behind.
    for stale in outbox.glob(f"BILLDET_{run_date:%Y%m%d}_*.csv"):
        if stale not in paths:
            stale.unlink()
    return paths
