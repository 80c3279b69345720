"""Celery tasks for bills: the daily bill-cycle run (the monthly run on the 1st) and the read sweep.

Thin and idempotent: a second run on the same day creates a run record that bills nobody twice
(the unique constraints on Bill are the guard), and the sweep only moves reads still pending.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from billing.services_bills import bill_run_create, bill_run_execute, on_demand_reads_sweep
from mdms.core.localtime import local_today


@shared_task(name="billing.bill_cycle_run", ignore_result=True)
def bill_cycle_run(run_date: str | None = None) -> int | None:
    """Bill the accounts whose bill-cycle day is run_date (ISO; default today, local); returns the run id.

    On the 1st this is the monthly run; days 29 to 31 have no accounts (cycle days are 1 to 28).
    """
    day = dt.date.fromisoformat(run_date) if run_date else local_today()
    if day.day > 28:
        return None
    run = bill_run_execute(run=bill_run_create(run_date=day))
    return run.pk


@shared_task(name="billing.on_demand_reads_sweep", ignore_result=True)
def on_demand_reads_sweep_task() -> dict[str, int]:
    """Complete pending on-demand reads whose reply arrived; estimate those past their timeout."""
    return on_demand_reads_sweep()
