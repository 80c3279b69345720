"""`manage.py run_billing [--date YYYY-MM-DD]`: bill the accounts whose bill-cycle day is the date, now.

The same run the beat schedule starts at 08:00 (billing.bill_cycle_run), with a progress bar;
running it again bills nobody twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from billing.bills import bill_run_create, bill_run_execute
from billing.models import BillingRun
from mdms.core.localtime import local_today


class Command(BaseCommand):
    help = "Bill the accounts whose bill-cycle day is the given date (default: today, local time)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=dt.date.fromisoformat, help="the billing date, YYYY-MM-DD")
        parser.add_argument("--chunk", type=int, default=500, help="accounts per step (default 500)")

    def handle(self, *args: Any, **options: Any) -> None:
        run_date: dt.date = options["date"] or local_today()
        if run_date.day > 28:
            raise CommandError("bill-cycle days run from 1 to 28: nobody is billed on the 29th to the 31st")
        run = bill_run_create(run_date=run_date)
        self.stdout.write(f"billing run {run.pk}: {run.period_start} to {run.period_end} (cycle day {run.cycle_day})")
        with tqdm(unit="account", desc="billing") as bar:

            def advance(current: BillingRun) -> None:
                bar.total = current.total
                bar.n = current.done
                bar.refresh()

            run = bill_run_execute(run=run, chunk=options["chunk"], on_progress=advance)
        self.stdout.write(
            f"{run.status}: {run.bills_created} bills, {run.already_billed} already billed, {run.failed} failed"
        )
        for error in run.errors[:20]:
            self.stderr.write(f"  {error['account']}: {error['error']}")
        if run.status == BillingRun.Status.FAILED:
            raise CommandError("the run failed; see its errors")
