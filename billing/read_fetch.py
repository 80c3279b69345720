"""Missing reads fetched before billing, and the determinants released to the CIS in batches.

At BILLING_FETCH_LEAD_S before a billing date's run (08:00 local, mdms.config.BILL_RUN_HOUR), every
account due is judged: complete when its meter has a closing register read (a stored reading with a
register at or after the period's end) and at most BILLING_FETCH_MAX_MISSING missing intervals.
Complete accounts are released in batch 1 at once. The others get an on-demand read command (the
command framework retries it until the run), and are released in the next batch once their read
arrived; when every command has ended, the rest go out in the final batch, estimated and flagged.

Every step is idempotent: one row per (date, account) is the guard, batches are numbered from the
rows already released, and the read commands carry an idempotency key per date and account.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from billing import determinants as det
from billing.billable_usage import accounts_due
from billing.models import DeterminantDelivery
from billing.selectors import daily_usage
from commands.kinds import Kind
from commands.models import MeterCommand
from commands.services import command_request, replies_apply
from mdms.config import BILL_RUN_HOUR
from mdms.core.localtime import local_at, local_day, local_midnight
from mdms.core.models import Account, Meter
from mdms.core.timeseries import readings as stored

log = logging.getLogger(__name__)

State = DeterminantDelivery.State
# Fetches go before routine commands, after nothing: the bill waits on them.
FETCH_PRIORITY = 8
# How far past the period's end a stored register still counts as its closing read.
CLOSING_READ_WINDOW = dt.timedelta(days=1)


def run_instant(run_date: dt.date) -> dt.datetime:
    """When the bill-cycle run of this date starts (UTC)."""
    return local_at(run_date, BILL_RUN_HOUR)


def fetch_starts(run_date: dt.date) -> dt.datetime:
    return run_instant(run_date) - dt.timedelta(seconds=settings.BILLING_FETCH_LEAD_S)


@dataclass(frozen=True)
class Judgement:
    meter: Meter | None
    complete: bool
    reason: str
    closing_read_at: dt.datetime | None = None
    closing_register_kwh: Decimal | None = None


def _meter_at_period_end(account: Account, period_end: dt.date) -> Meter | None:
    """The meter serving the account's premise when the period ends (the one whose read closes it)."""
    installation = (
        account.premise.installations.filter(installed_on__lt=period_end)
        .exclude(removed_on__lt=period_end)
        .select_related("meter")
        .order_by("-installed_on")
        .first()
    )
    return installation.meter if installation else None


def account_judge(account: Account, run_date: dt.date, *, now: dt.datetime) -> Judgement:
    """Whether the account's period can be billed from what is stored, and if not, why."""
    period_start, period_end = det.cycle_period(run_date)
    meter = _meter_at_period_end(account, period_end)
    if meter is None:
        return Judgement(None, True, "no meter at the period's end")
    end = local_midnight(period_end)
    # The closing read is the first register at or after the period's end: a day after it is
    # enough to look (reading every interval up to now would grow with every day the run is late).
    closing = next(
        (
            row
            for row in stored.readings_for_meter(meter.pk, end, min(now, end + CLOSING_READ_WINDOW))
            if row.get("register_import_kwh") is not None
        ),
        None,
    )
    start = max(period_start, account.move_in_date)
    missing = sum(day.missing_intervals for day in daily_usage(meter_pk=meter.pk, start=start, end=period_end))
    if closing is None:
        return Judgement(meter, False, "no closing register read")
    if missing > settings.BILLING_FETCH_MAX_MISSING:
        return Judgement(meter, False, f"{missing} intervals missing in the period")
    register = Decimal(str(round(float(closing["register_import_kwh"]), 3)))
    return Judgement(meter, True, "", closing["ts"], register)


def fetch_missing_reads(
    *, run_date: dt.date, now: dt.datetime | None = None, until: dt.datetime | None = None
) -> dict[str, int]:
    """At the lead time: release the complete accounts in batch 1, ask the others' meters for a read,
    retried until `until` (default: the run; at least five minutes from now for a late start).
    Accounts already judged for this date are left as they are."""
    now = now or timezone.now()
    counts = {"complete": 0, "fetching": 0, "already": 0}
    judged = set(DeterminantDelivery.objects.filter(run_date=run_date).values_list("account_id", flat=True))
    deadline = until or max(run_instant(run_date), now + dt.timedelta(minutes=5))
    for account in accounts_due(run_date):
        if account.pk in judged:
            counts["already"] += 1
            continue
        judgement = account_judge(account, run_date, now=now)
        delivery = DeterminantDelivery(
            run_date=run_date,
            account=account,
            meter=judgement.meter,
            state=State.COMPLETE if judgement.complete else State.FETCHING,
            batch=1 if judgement.complete else None,
            released_at=now if judgement.complete else None,
            reason=judgement.reason,
            closing_read_at=judgement.closing_read_at,
            closing_register_kwh=judgement.closing_register_kwh,
        )
        try:
            with transaction.atomic():
                if not judgement.complete and judgement.meter is not None:
                    delivery.command, _ = command_request(
                        meter=judgement.meter,
                        kind=Kind.READ,
                        priority=FETCH_PRIORITY,
                        deadline=deadline,
                        reason=f"closing read for billing {run_date}: {judgement.reason}",
                        idempotency_key=f"billing-fetch:{run_date}:{account.number}",
                        audit=False,
                    )
                delivery.save()
        except IntegrityError:  # another sweep judged it meanwhile
            counts["already"] += 1
            continue
        counts["complete" if judgement.complete else "fetching"] += 1
    return counts


def fetched_reads_collect(*, run_date: dt.date, now: dt.datetime | None = None) -> dict[str, int]:
    """Release the accounts whose reads arrived in a new batch; once every read command has ended,
    release the rest in the final batch, estimated. Returns how many went into each."""
    now = now or timezone.now()
    replies_apply(now=now)
    released = {"fetched": 0, "estimated": 0}
    with transaction.atomic():
        waiting = list(
            DeterminantDelivery.objects.select_for_update(of=("self",))
            .filter(run_date=run_date, batch__isnull=True)
            .select_related("command")
            .order_by("account_id")
        )
        if not waiting:
            return released
        last = DeterminantDelivery.objects.filter(run_date=run_date).aggregate(Max("batch"))["batch__max"] or 0
        arrived = [d for d in waiting if d.command and d.command.status == MeterCommand.Status.COMPLETED]
        for delivery in arrived:
            result: dict[str, Any] = delivery.command.result if delivery.command else {}
            delivery.state, delivery.batch, delivery.released_at = State.FETCHED, last + 1, now
            delivery.closing_register_kwh = Decimal(str(result["register_import_kwh"]))
            delivery.closing_read_at = dt.datetime.fromisoformat(result["ts"]) if result.get("ts") else now
            delivery.save()
        released["fetched"] = len(arrived)
        last += 1 if arrived else 0
        still = [d for d in waiting if d not in arrived]
        over = all(d.command is None or d.command.status in MeterCommand.FINAL for d in still)
        if still and over:
            for delivery in still:
                delivery.state, delivery.batch, delivery.final_batch, delivery.released_at = (
                    State.ESTIMATED,
                    last + 1,
                    True,
                    now,
                )
                delivery.save()
            released["estimated"] = len(still)
    return released


def deliveries_sweep(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """The periodic job: start the fetches whose lead time has come (today's and tomorrow's dates),
    and collect what arrived for every date still waiting."""
    now = now or timezone.now()
    report: dict[str, Any] = {}
    today = local_day(now)
    for run_date in (today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)):
        if run_date.day > 28 or fetch_starts(run_date) > now:
            continue
        report[str(run_date)] = fetch_missing_reads(run_date=run_date, now=now)
    waiting_dates = DeterminantDelivery.objects.filter(batch__isnull=True).values_list("run_date", flat=True).distinct()
    for run_date in waiting_dates:
        report[f"{run_date} released"] = fetched_reads_collect(run_date=run_date, now=now)
    return report


def deliveries_ensure(run_date: dt.date, *, now: dt.datetime | None = None) -> None:
    """Without a fetch (a date asked before its lead time, or a past one), every account due goes out
    in batch 1 as it stands: the rows make the batch numbers of the API and the files agree."""
    now = now or timezone.now()
    judged = set(DeterminantDelivery.objects.filter(run_date=run_date).values_list("account_id", flat=True))
    missing = [a for a in accounts_due(run_date) if a.pk not in judged]
    DeterminantDelivery.objects.bulk_create(
        [
            DeterminantDelivery(run_date=run_date, account=a, state=State.COMPLETE, batch=1, released_at=now)
            for a in missing
        ],
        ignore_conflicts=True,
    )
