"""Writes of bills: cycle runs, re-bills, final bills and cancellations.

Double billing is prevented by the database, not by care: Bill has a unique (account, period,
version) and one current bill per account and period. A run checks first (cheap, and counts
what was already billed) and the constraint settles races between runs that check at once.

A period is priced only from complete data. A run holds an account, with its reason on the run,
when the rollups billing reads have not caught up with readings stored for its meters (the rollup
follower is behind), or when intervals are still missing after VEE estimated what it could (VEE
runs first for those meters, so its exceptions are in the queue before the bill is not). Missing
intervals are never priced as zero. A held account is billed by a later run of the same date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from celery import current_app
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from billing import determinants as det
from billing import pricing, selectors, tariff_versions
from billing.billable_usage import accounts_due, determinants_for, meters_for, terms_cache
from billing.models import Bill, BillingRun, BillLineItem, OnDemandRead
from billing.outbox import outbox_write
from billing.rollups import rollups_owed
from billing.selectors import incomplete_days
from billing.vee.services import vee_run
from mdms.core.audit import audit_record
from mdms.core.localtime import local_day, local_midnight, local_today, local_zone
from mdms.core.models import Account, AuditLog

log = logging.getLogger(__name__)

# Accounts billed per step: one bulk read of usage and one bulk insert of bills per chunk.
CHUNK = 500
# Why a run holds an account (BillingRun.holds[].kind). Rollups behind is transient: the beat's
# catch-up runs the date again; missing intervals need a person (the VEE exception queue).
HOLD_ROLLUPS_BEHIND = "rollups_behind"
HOLD_MISSING_INTERVALS = "missing_intervals"


class BillHeld(ValueError):
    """A bill that must not be priced yet (incomplete data); the message says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def _set_final_registers(bill: Bill, read: OnDemandRead) -> None:
    """A final bill shows the register at the start of its billed days and at the move-out read."""
    start = selectors.register_reading_at(meter_pk=read.meter_id, at=local_midnight(bill.period_start))
    if start is not None:
        bill.start_register_at = start.at
        bill.start_register_import_kwh = start.import_kwh
        bill.start_register_export_kwh = start.export_kwh
    bill.end_register_at = read.read_at
    bill.end_register_import_kwh = read.register_import_kwh
    bill.end_register_export_kwh = read.register_export_kwh


def _bill_rows(
    *,
    account: Account,
    determinants: det.Determinants,
    terms: det.TariffTerms,
    run: BillingRun | None = None,
    kind: str = Bill.Kind.CYCLE,
    version: int = 1,
    reason: str = "",
    final_read: OnDemandRead | None = None,
    created_by: User | None = None,
) -> tuple[Bill, list[BillLineItem]]:
    items = tariff_versions.bill_line_items(
        account=account,
        determinants=determinants,
        terms=terms,
        usage_end=final_read.read_at if final_read is not None else None,
    )
    d = determinants
    bill = Bill(
        account=account,
        run=run,
        kind=kind,
        period_start=d.billed_start,
        period_end=d.billed_end,
        version=version,
        is_current=True,
        rebill_reason=reason,
        currency=terms.currency,
        import_kwh=d.import_kwh,
        export_kwh=d.export_kwh,
        net_kwh=d.net_kwh,
        estimated_kwh=d.estimated_kwh,
        estimated_share=d.estimated_share,
        max_demand_kw=d.max_demand_kw,
        max_demand_at=d.max_demand_at,
        multiplier=d.multiplier,
        determinants=d.as_json(),
        total=pricing.total(items),
        final_read=final_read,
        created_by=created_by,
    )
    if final_read is not None:
        _set_final_registers(bill, final_read)
    lines = [
        BillLineItem(
            position=n,
            code=item.code,
            description=item.description,
            quantity=item.quantity,
            unit=item.unit,
            rate=item.rate,
            amount=item.amount,
            estimated=item.estimated,
        )
        for n, item in enumerate(items, start=1)
    ]
    return bill, lines


def _save(pairs: Sequence[tuple[Bill, list[BillLineItem]]]) -> None:
    Bill.objects.bulk_create([bill for bill, _ in pairs])
    lines = []
    for bill, items in pairs:
        for item in items:
            item.bill = bill
            lines.append(item)
    BillLineItem.objects.bulk_create(lines, batch_size=5000)


def _insert_bills(pairs: list[tuple[Bill, list[BillLineItem]]]) -> tuple[int, int, list[dict[str, str]]]:
    """(created, already billed, errors). One bulk insert; on a conflict, account by account."""
    try:
        with transaction.atomic():
            _save(pairs)
        return len(pairs), 0, []
    except IntegrityError:
        pass  # another run billed some of these meanwhile: find out which, one by one
    created = already = 0
    errors: list[dict[str, str]] = []
    for bill, items in pairs:
        bill.pk = None
        for item in items:
            item.pk = None
        try:
            with transaction.atomic():
                _save([(bill, items)])
            created += 1
        except IntegrityError:
            already += 1
        except Exception as exc:  # noqa: BLE001 - recorded on the run; the other accounts go on
            errors.append({"account": bill.account.number, "error": f"{type(exc).__name__}: {exc}"})
    return created, already, errors


# A missed bill-cycle day (the stack was down at 08:00) is caught up for this many days back.
CATCH_UP_DAYS = 7
# The scheduled run's local hour (mdms.schedule): today is caught up only after it.
RUN_HOUR = 8
# A run still pending or running after this long is taken for dead (its worker was killed).
RUN_STALE = dt.timedelta(hours=6)


def bill_run_date_check(run_date: dt.date, *, today: dt.date | None = None) -> None:
    """The guards of every run, scheduled or started by hand: a cycle day, not in the future."""
    if run_date.day > 28:
        raise ValidationError(
            {"run_date": "Bill-cycle days run from 1 to 28: nobody is billed on the 29th to the 31st."}
        )
    if run_date > (today or local_today()):
        raise ValidationError({"run_date": "A run bills a period that has ended: the date cannot be in the future."})
    try:
        det.cycle_period(run_date)
    except ValueError as exc:
        raise ValidationError({"run_date": "No billing period ends on this date."}) from exc


def _run_in_progress(run_date: dt.date, now: dt.datetime) -> BillingRun | None:
    return (
        BillingRun.objects.filter(
            run_date=run_date,
            status__in=[BillingRun.Status.PENDING, BillingRun.Status.RUNNING],
            created_at__gte=now - RUN_STALE,
        )
        .order_by("-created_at")
        .first()
    )


def bill_run_start(*, run_date: dt.date, created_by: User | None = None) -> BillingRun:
    """Billing staff start (or start again) the run of a date; it executes on a worker once committed.

    The same guards as the scheduled run; a run of the date already under way is returned instead of
    a second one. Starting a date again bills only what is not billed yet (held or missed accounts).
    """
    bill_run_date_check(run_date)
    now = timezone.now()
    with transaction.atomic():
        running = _run_in_progress(run_date, now)
        if running is not None:
            return running
        run = bill_run_create(run_date=run_date, created_by=created_by)
        audit_record(
            actor=created_by,
            action=AuditLog.Action.BILL_RUN_START,
            target=f"run:{run.pk}",
            detail={"run_date": run_date.isoformat()},
        )
        # By name: billing.tasks imports this module.
        transaction.on_commit(lambda: current_app.send_task("billing.bill_run_execute", args=[run.pk]))
    return run


def bill_cycle_catch_up(*, now: dt.datetime | None = None) -> list[BillingRun]:
    """Run each bill-cycle day of the last CATCH_UP_DAYS that has no completed run (missed while the stack
    was down), and again each whose last run held accounts only because the rollups were behind.

    Idempotent: a date billed completely is left alone, and a run bills nobody twice.
    """
    now = now or timezone.now()
    today = local_today(now)
    after_run_hour = now.astimezone(local_zone()).hour >= RUN_HOUR
    done = []
    for back in range(CATCH_UP_DAYS, -1, -1):
        day = today - dt.timedelta(days=back)
        if day.day > 28 or (day == today and not after_run_hour):
            continue
        latest = BillingRun.objects.filter(run_date=day).order_by("-created_at", "-id").first()
        if latest is not None:
            if latest.status in (BillingRun.Status.PENDING, BillingRun.Status.RUNNING):
                if latest.created_at >= now - RUN_STALE:
                    continue  # under way
            elif latest.status == BillingRun.Status.COMPLETED and not any(
                hold.get("kind") == HOLD_ROLLUPS_BEHIND for hold in latest.holds
            ):
                continue  # billed; accounts held for missing data wait for a person
        done.append(bill_run_execute(run=bill_run_create(run_date=day)))
    return done


def bill_run_create(*, run_date: dt.date, created_by: User | None = None) -> BillingRun:
    period_start, period_end = det.cycle_period(run_date)
    return BillingRun.objects.create(
        run_date=run_date,
        cycle_day=run_date.day,
        period_start=period_start,
        period_end=period_end,
        created_by=created_by,
    )


def _already_billed(account_pks: Sequence[int], start: dt.date, end: dt.date) -> set[int]:
    """Accounts with a current bill overlapping [start, end): a cycle bill, or a final bill."""
    return set(
        Bill.objects.filter(account_id__in=account_pks, is_current=True, period_start__lt=end, period_end__gt=start)
        .values_list("account_id", flat=True)
        .distinct()
    )


def bill_run_execute(
    *, run: BillingRun, chunk: int = CHUNK, on_progress: Callable[[BillingRun], None] | None = None
) -> BillingRun:
    """Bill every account due on the run's date. Safe to call twice or from two processes at once."""
    started = BillingRun.objects.filter(pk=run.pk, status=BillingRun.Status.PENDING).update(
        status=BillingRun.Status.RUNNING, started_at=timezone.now()
    )
    if not started:  # another worker has it (or had it): a run executes once
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    try:
        accounts = accounts_due(run.run_date)
        run.total = len(accounts)
        run.save(update_fields=["total"])
        terms = terms_cache()
        # One look at the rollup follower for the whole run: which meters' rollups still lack stored readings.
        owed = rollups_owed(start=local_midnight(run.period_start), end=local_midnight(run.period_end))
        for offset in range(0, len(accounts), chunk):
            _bill_chunk(run, accounts[offset : offset + chunk], terms, owed)
            run.save(update_fields=["done", "bills_created", "already_billed", "failed", "errors", "held", "holds"])
            if on_progress:
                on_progress(run)
        run.status = BillingRun.Status.COMPLETED
    except Exception as exc:
        log.exception("billing run %s failed", run.pk)
        run.status = BillingRun.Status.FAILED
        run.errors = [*run.errors, {"account": "", "error": f"{type(exc).__name__}: {exc}"}]
    if run.status == BillingRun.Status.COMPLETED:
        _write_outbox(run)
    run.finished_at = timezone.now()
    run.save()
    return run


def _write_outbox(run: BillingRun) -> None:
    """The CIS's BILLDET files of the run's date (rewritten whole: a re-run writes the same files)."""
    try:
        outbox_write(run_date=run.run_date)
    except Exception as exc:  # the bills stand; the files are written again by the next run
        log.exception("billing run %s: the outbox files could not be written", run.pk)
        run.errors = [*run.errors, {"account": "", "error": f"outbox: {type(exc).__name__}: {exc}"}]


def _hold(run: BillingRun, account: Account, kind: str, reason: str) -> None:
    run.held += 1
    run.holds = [*run.holds, {"account": account.number, "kind": kind, "reason": reason}]


def _owed_reason(meter_pks: Sequence[int], owed: set[int] | None) -> str | None:
    if owed is None:
        return "the rollup follower is far behind the stored readings; billed once it has caught up"
    behind = sorted(set(meter_pks) & owed)
    if not behind:
        return None
    return (
        f"readings of {len(behind)} of its meters are stored but not yet in the daily rollups "
        "(the rollup follower is behind); billed once it has caught up"
    )


def _missing_reason(outcome: det.Determinants) -> str:
    return (
        f"{outcome.intervals_missing} of {outcome.intervals_expected} intervals have no value even after VEE "
        "estimation (see the VEE exception queue); never billed as zero"
    )


def _estimate_missing(
    accounts: Sequence[Account],
    windows: dict[int, det.Window],
    meters: dict[int, list[tuple[int, dt.date, dt.date]]],
) -> None:
    """VEE over the incomplete days of these accounts' meters: estimates what it can, raises exceptions for
    the rest. Only the days that lack intervals: a month's VEE for every meter would cost seconds each."""
    for account in accounts:
        for meter_pk, first_day, end_day in meters.get(account.pk, []):
            days = incomplete_days(meter_pks=[meter_pk], start=first_day, end=end_day)[meter_pk]
            for day in days:  # in order: a day's profile estimate may read the days before it
                vee_run(meter_pks=[meter_pk], first_day=day, end_day=day + dt.timedelta(days=1))


def _bill_chunk(
    run: BillingRun,
    accounts: list[Account],
    terms: Callable[[Account], det.TariffTerms],
    owed: set[int] | None,
) -> None:
    billed = _already_billed([a.pk for a in accounts], run.period_start, run.period_end)
    todo = [a for a in accounts if a.pk not in billed]
    windows: dict[int, det.Window] = {}
    pairs: list[tuple[Bill, list[BillLineItem]]] = []
    errors: list[dict[str, str]] = []
    for account in todo:
        try:
            windows[account.pk] = det.Window.for_account(
                period_start=run.period_start,
                period_end=run.period_end,
                move_in=account.move_in_date,
                move_out=account.move_out_date,
            )
        except ValueError as exc:
            errors.append({"account": account.number, "error": str(exc)})
    meters = meters_for([a for a in todo if a.pk in windows], windows)
    computable = []
    for account in todo:
        if account.pk not in windows:
            continue
        behind = _owed_reason([pk for pk, _first, _end in meters[account.pk]], owed)
        if behind:
            _hold(run, account, HOLD_ROLLUPS_BEHIND, behind)
        else:
            computable.append(account)
    results = determinants_for(computable, windows, terms)
    incomplete = [a for a in computable if _missing(results[a.pk])]
    if incomplete:
        _estimate_missing(incomplete, windows, meters)
        results.update(determinants_for(incomplete, windows, terms))
    for account in computable:
        outcome = results[account.pk]
        if isinstance(outcome, Exception):
            errors.append({"account": account.number, "error": f"{type(outcome).__name__}: {outcome}"})
            continue
        if outcome.intervals_missing:
            _hold(run, account, HOLD_MISSING_INTERVALS, _missing_reason(outcome))
            continue
        try:
            pairs.append(_bill_rows(account=account, determinants=outcome, terms=terms(account), run=run))
        except Exception as exc:  # noqa: BLE001 - recorded on the run; the other accounts go on
            errors.append({"account": account.number, "error": f"{type(exc).__name__}: {exc}"})
    created, already, insert_errors = _insert_bills(pairs) if pairs else (0, 0, [])
    errors.extend(insert_errors)
    run.done += len(accounts)
    run.bills_created += created
    run.already_billed += len(billed) + already
    run.failed += len(errors)
    run.errors = [*run.errors, *errors]


def _missing(outcome: det.Determinants | Exception) -> bool:
    return isinstance(outcome, det.Determinants) and outcome.intervals_missing > 0


def _complete_determinants(
    account: Account, window: det.Window, terms: Callable[[Account], det.TariffTerms]
) -> det.Determinants:
    """One account's determinants under a run's rules (rollups caught up, nothing missing); BillHeld if not."""
    windows = {account.pk: window}
    meters = meters_for([account], windows)
    start, end = window.bounds(local_zone())
    meter_pks = [pk for pk, _first, _end in meters[account.pk]]
    behind = _owed_reason(meter_pks, rollups_owed(start=start, end=end, meter_pks=meter_pks))
    if behind:
        raise BillHeld(HOLD_ROLLUPS_BEHIND, behind)
    outcome = determinants_for([account], windows, terms)[account.pk]
    if _missing(outcome):
        _estimate_missing([account], windows, meters)
        outcome = determinants_for([account], windows, terms)[account.pk]
    if isinstance(outcome, Exception):
        raise outcome
    if outcome.intervals_missing:
        raise BillHeld(HOLD_MISSING_INTERVALS, _missing_reason(outcome))
    return outcome


def _rebill_window(bill: Bill) -> det.Window:
    cycle = bill.determinants
    return det.Window(
        period_start=dt.date.fromisoformat(cycle["period_start"]),
        period_end=dt.date.fromisoformat(cycle["period_end"]),
        billed_start=bill.period_start,
        billed_end=bill.period_end,
        usage_end=bill.final_read.read_at if bill.final_read else None,
    )


def bill_rebill_preview(*, bill: Bill) -> tuple[Bill, list[BillLineItem]]:
    """What a re-bill of this bill would be today, unsaved: the same rules as bill_rebill (BillHeld when
    the data is incomplete). Billing staff are proposed a re-bill from the difference (billing.rebill_proposals)."""
    current = Bill.objects.select_related("account__tariff", "final_read").get(pk=bill.pk)
    terms = terms_cache()
    outcome = _complete_determinants(current.account, _rebill_window(current), terms)
    return _bill_rows(
        account=current.account,
        determinants=outcome,
        terms=terms(current.account),
        kind=current.kind,
        version=current.version + 1,
        final_read=current.final_read,
    )


@transaction.atomic
def bill_rebill(*, bill: Bill, reason: str, created_by: User | None = None) -> Bill:
    """Bill the same account and period again (after an edit): version n+1 is current, the old is kept."""
    current = (
        Bill.objects.select_for_update(of=("self",)).select_related("account__tariff", "final_read").get(pk=bill.pk)
    )
    if not current.is_current:
        raise ValueError(f"bill {current} has been superseded; re-bill the current version")
    account = current.account
    window = _rebill_window(current)
    terms = terms_cache()
    outcome = _complete_determinants(account, window, terms)
    latest = Bill.objects.filter(
        account=account, period_start=current.period_start, period_end=current.period_end
    ).aggregate(Max("version"))["version__max"]
    Bill.objects.filter(pk=current.pk).update(is_current=False)
    new, lines = _bill_rows(
        account=account,
        determinants=outcome,
        terms=terms(account),
        run=None,
        kind=current.kind,
        version=latest + 1,
        reason=reason,
        final_read=current.final_read,
        created_by=created_by,
    )
    _save([(new, lines)])
    audit_record(
        actor=created_by,
        action=AuditLog.Action.REBILL,
        target=f"bill:{new.pk}",
        detail={"account": account.number, "replaces": current.pk, "version": new.version, "reason": reason},
    )
    if new.kind == Bill.Kind.CYCLE:
        # The CIS's file of that billing date now carries version n+1 (written once this commits).
        run_date = window.period_end
        transaction.on_commit(lambda: outbox_write(run_date=run_date))
    return new


def bill_final(*, read: OnDemandRead, created_by: User | None = None) -> Bill | None:
    """The move-out bill: from the start of the open cycle up to the read (the move-out day billed).

    None when the account already has a current bill for that stretch. A ValueError when the read is
    later than the account's move-out (a final bill never covers days after it), and BillHeld when
    the data up to the read is incomplete.
    """
    assert read.account is not None and read.read_at is not None
    account = Account.objects.select_related("tariff").get(pk=read.account.pk)
    out_day = local_day(read.read_at)
    if account.move_out_date is not None and out_day > account.move_out_date:
        raise ValueError(
            f"account {account.number} moved out on {account.move_out_date}: "
            f"a final bill cannot cover {out_day}, after the move-out"
        )
    Account.objects.filter(pk=account.pk, move_out_date__isnull=True).update(move_out_date=out_day)
    cycle_start, cycle_end = det.current_period(account.bill_cycle_day, out_day)
    window = det.Window(
        period_start=cycle_start,
        period_end=cycle_end,
        billed_start=max(cycle_start, account.move_in_date),
        billed_end=out_day + dt.timedelta(days=1),
        usage_end=read.read_at,
    )
    if _already_billed([account.pk], window.billed_start, window.billed_end):
        return None
    terms = terms_cache()
    outcome = _complete_determinants(account, window, terms)
    bill, lines = _bill_rows(
        account=account,
        determinants=outcome,
        terms=terms(account),
        kind=Bill.Kind.FINAL,
        final_read=read,
        created_by=created_by,
    )
    try:
        with transaction.atomic():
            _save([(bill, lines)])
    except IntegrityError:
        return None
    return bill


@transaction.atomic
def bill_cancel(*, bill: Bill, reason: str, cancelled_by: User | None) -> Bill:
    """Cancel a wrongly issued bill: it stops being current (gone from the consumer's pages, the period
    can be billed again) and is kept, marked cancelled, with an audit entry. Cancelling twice is refused."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the bill is cancelled."})
    current = Bill.objects.select_for_update(of=("self",)).select_related("account").get(pk=bill.pk)
    if current.cancelled_at is not None:
        raise ValidationError({"bill": f"This bill was cancelled on {current.cancelled_at:%d %b %Y}."})
    if not current.is_current:
        raise ValidationError({"bill": "This version has been superseded; cancel the current version."})
    current.is_current = False
    current.cancelled_at = timezone.now()
    current.cancelled_by = cancelled_by
    current.cancel_reason = reason.strip()
    current.save(update_fields=["is_current", "cancelled_at", "cancelled_by", "cancel_reason"])
    audit_record(
        actor=cancelled_by,
        action=AuditLog.Action.BILL_CANCEL,
        target=f"bill:{current.pk}",
        detail={
            "account": current.account.number,
            "period_start": current.period_start.isoformat(),
            "period_end": current.period_end.isoformat(),
            "version": current.version,
            "total": str(current.total),
            "reason": current.cancel_reason,
        },
    )
    if current.kind == Bill.Kind.CYCLE:
        run_date = dt.date.fromisoformat(current.determinants.get("period_end", current.period_end.isoformat()))
        transaction.on_commit(lambda: outbox_write(run_date=run_date))
    return current
