"""Writes of bills: cycle runs, re-bills and final bills.

Double billing is prevented by the database, not by care: Bill has a unique (account, period,
version) and one current bill per account and period. A run checks first (cheap, and counts
what was already billed) and the constraint settles races between runs that check at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from billing import determinants as det
from billing import pricing, selectors, tariff_versions
from billing.billable_usage import accounts_due, determinants_for, terms_cache
from billing.models import Bill, BillingRun, BillLineItem, OnDemandRead
from mdms.core.audit import audit_record
from mdms.core.localtime import local_day, local_midnight
from mdms.core.models import Account, AuditLog

log = logging.getLogger(__name__)

# Accounts billed per step: one bulk read of usage and one bulk insert of bills per chunk.
CHUNK = 500


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
        for offset in range(0, len(accounts), chunk):
            _bill_chunk(run, accounts[offset : offset + chunk], terms)
            run.save(update_fields=["done", "bills_created", "already_billed", "failed", "errors"])
            if on_progress:
                on_progress(run)
        run.status = BillingRun.Status.COMPLETED
    except Exception as exc:
        log.exception("billing run %s failed", run.pk)
        run.status = BillingRun.Status.FAILED
        run.errors = [*run.errors, {"account": "", "error": f"{type(exc).__name__}: {exc}"}]
    run.finished_at = timezone.now()
    run.save()
    return run


def _bill_chunk(run: BillingRun, accounts: list[Account], terms: Callable[[Account], det.TariffTerms]) -> None:
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
    computable = [a for a in todo if a.pk in windows]
    results = determinants_for(computable, windows, terms)
    for account in computable:
        outcome = results[account.pk]
        if isinstance(outcome, Exception):
            errors.append({"account": account.number, "error": f"{type(outcome).__name__}: {outcome}"})
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


@transaction.atomic
def bill_rebill(*, bill: Bill, reason: str, created_by: User | None = None) -> Bill:
    """Bill the same account and period again (after an edit): version n+1 is current, the old is kept."""
    current = (
        Bill.objects.select_for_update(of=("self",)).select_related("account__tariff", "final_read").get(pk=bill.pk)
    )
    if not current.is_current:
        raise ValueError(f"bill {current} has been superseded; re-bill the current version")
    account = current.account
    cycle = current.determinants
    window = det.Window(
        period_start=dt.date.fromisoformat(cycle["period_start"]),
        period_end=dt.date.fromisoformat(cycle["period_end"]),
        billed_start=current.period_start,
        billed_end=current.period_end,
        usage_end=current.final_read.read_at if current.final_read else None,
    )
    terms = terms_cache()
    outcome = determinants_for([account], {account.pk: window}, terms)[account.pk]
    if isinstance(outcome, Exception):
        raise outcome
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
    return new


def bill_final(*, read: OnDemandRead, created_by: User | None = None) -> Bill | None:
    """The move-out bill: from the start of the open cycle up to the read (the move-out day billed).

    None when the account already has a current bill for that stretch.
    """
    assert read.account is not None and read.read_at is not None
    account = Account.objects.select_related("tariff").get(pk=read.account.pk)
    out_day = local_day(read.read_at)
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
    outcome = determinants_for([account], {account.pk: window}, terms)[account.pk]
    if isinstance(outcome, Exception):
        raise outcome
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
