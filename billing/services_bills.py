"""Writes of billing: runs, bills and re-bills, final bills, on-demand reads.

Double billing is prevented by the database, not by care: Bill has a unique (account, period,
version) and one current bill per account and period. A run checks first (cheap, and counts
what was already billed) and the constraint settles races between runs that check at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from billing import determinants as det
from billing import pricing
from billing.models import Bill, BillingRun, BillLineItem, OnDemandRead
from billing.selectors import billing_totals, daily_usage, usage_for_billing
from mdms.core.audit import audit_record
from mdms.core.localtime import local_day, local_midnight, local_zone
from mdms.core.models import Account, ApiToken, AuditLog, Holiday, Meter, MeterInstallation
from mdms.core.timeseries import readings as stored

log = logging.getLogger(__name__)

# Accounts billed per step: one bulk read of usage and one bulk insert of bills per chunk.
CHUNK = 500
# How long a meter has to answer an on-demand read before the read is estimated.
READ_TIMEOUT_S = 120
# A timed-out read is estimated from the newest register reading within this many days.
ESTIMATE_LOOKBACK_DAYS = 7


# Usage in bulk: what determinants need for many accounts at once.


@dataclass(frozen=True)
class _Served:
    meter_pk: int
    multiplier: Decimal
    interval_s: int
    start_day: dt.date | None  # installed within the window: from that day
    end_day: dt.date | None  # removed within the window: until that day (exclusive)


def _meters_serving(premise_pks: Sequence[int], start: dt.date, end: dt.date) -> dict[int, list[_Served]]:
    """Per premise, the meters installed there during [start, end), with the part they served."""
    rows = (
        MeterInstallation.objects.filter(premise_id__in=premise_pks, installed_on__lt=end)
        .filter(Q(removed_on__isnull=True) | Q(removed_on__gt=start))
        .values_list("premise_id", "meter_id", "meter__multiplier", "meter__interval_s", "installed_on", "removed_on")
    )
    served: dict[int, list[_Served]] = defaultdict(list)
    for premise_pk, meter_pk, multiplier, interval_s, installed_on, removed_on in rows:
        served[premise_pk].append(
            _Served(
                meter_pk,
                multiplier,
                interval_s,
                installed_on if installed_on > start else None,
                removed_on if removed_on and removed_on < end else None,
            )
        )
    return served


def holidays_in(start: dt.date, end: dt.date) -> frozenset[dt.date]:
    return frozenset(Holiday.objects.filter(date__gte=start, date__lt=end).values_list("date", flat=True))


def _terms_cache() -> Callable[[Account], det.TariffTerms]:
    cache: dict[int, det.TariffTerms] = {}

    def terms(account: Account) -> det.TariffTerms:
        if account.tariff_id not in cache:
            cache[account.tariff_id] = det.tariff_terms(account.tariff)
        return cache[account.tariff_id]

    return terms


def determinants_for(
    accounts: Sequence[Account], windows: dict[int, det.Window], terms: Callable[[Account], det.TariffTerms]
) -> dict[int, det.Determinants | Exception]:
    """Determinants of many accounts (keyed by account pk), each with its own window.

    Meters that share a tariff and a stretch of days (most of a run) are summed by MongoDB in one
    bulk read; a window ending at a read time (a final bill) is summed from its hours. An account
    that cannot be computed gets its exception instead, so that one bad account never stops the others.
    """
    if not accounts:
        return {}
    first = min(w.billed_start for w in windows.values())
    last = max(w.billed_end for w in windows.values())
    served = _meters_serving([a.premise_id for a in accounts], first, last)
    holidays = holidays_in(first, last)
    # (tariff, first day, end day) -> meters; each meter's stretch is the window cut to its installation.
    groups: dict[tuple[int, dt.date, dt.date], set[int]] = defaultdict(set)
    stretches: dict[int, list[tuple[_Served, dt.date, dt.date]]] = {}
    for account in accounts:
        window = windows[account.pk]
        if window.usage_end is not None:
            continue
        stretches[account.pk] = []
        for s in served.get(account.premise_id, []):
            lower = max(window.billed_start, s.start_day or window.billed_start)
            upper = min(window.billed_end, s.end_day or window.billed_end)
            if lower < upper:
                stretches[account.pk].append((s, lower, upper))
                groups[(account.tariff_id, lower, upper)].add(s.meter_pk)
    tariffs = {account.tariff_id: account for account in accounts}
    totals: dict[tuple[int, dt.date, dt.date], dict[int, Any] | Exception] = {}
    for key, meter_pks in groups.items():
        tariff_pk, lower, upper = key
        try:
            namer = det.bucket_namer(terms(tariffs[tariff_pk]), holidays)
            totals[key] = billing_totals(meter_pks=sorted(meter_pks), start=lower, end=upper, bucket_of=namer)
        except Exception as exc:  # noqa: BLE001 - every account of the group records it
            totals[key] = exc
    results: dict[int, det.Determinants | Exception] = {}
    for account in accounts:
        try:
            window = windows[account.pk]
            if window.usage_end is not None:
                meters = _usage_to_read(account, window, served.get(account.premise_id, []), terms, holidays)
            else:
                meters = []
                for s, lower, upper in stretches[account.pk]:
                    found = totals[(account.tariff_id, lower, upper)]
                    if isinstance(found, Exception):
                        raise found
                    meters.append(det.MeterUsage(s.multiplier, found[s.meter_pk]))
            results[account.pk] = det.compute(terms=terms(account), window=window, meters=meters, zone=local_zone())
        except Exception as exc:  # noqa: BLE001 - recorded on the run; the run goes on
            results[account.pk] = exc
    return results


def _usage_to_read(
    account: Account,
    window: det.Window,
    served: list[_Served],
    terms: Callable[[Account], det.TariffTerms],
    holidays: frozenset[dt.date],
) -> list[det.MeterUsage]:
    """Usage from the window's start to a read's time, hour by hour (one account: a final bill)."""
    start, end = window.bounds(local_zone())
    namer = det.bucket_namer(terms(account), holidays)
    meters = []
    for s in served:
        lower = max(start, local_midnight(s.start_day)) if s.start_day else start
        upper = min(end, local_midnight(s.end_day)) if s.end_day else end
        if lower >= upper:
            continue
        hours = usage_for_billing(meter_pks=[s.meter_pk], start=lower, end=upper)[s.meter_pk]
        days = daily_usage(meter_pk=s.meter_pk, start=local_day(lower), end=local_day(upper) + dt.timedelta(days=1))
        peaks = [(d.max_demand_at, d.max_demand_kw) for d in days if d.max_demand_at and d.max_demand_kw is not None]
        totals = det.totals_from_hours(
            hours, start=lower, end=upper, bucket_of=namer, interval_s=s.interval_s, peaks=peaks
        )
        meters.append(det.MeterUsage(s.multiplier, totals))
    return meters


# Bills.


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
    items = pricing.line_items(determinants, terms)
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


def accounts_due(run_date: dt.date) -> list[Account]:
    """Accounts with their bill-cycle day on run_date, active at some point of the period billed."""
    period_start, period_end = det.cycle_period(run_date)
    return list(
        Account.objects.filter(bill_cycle_day=run_date.day, move_in_date__lt=period_end)
        .filter(Q(move_out_date__isnull=True) | Q(move_out_date__gt=period_start))
        .select_related("tariff")
        .prefetch_related("tariff__tou_periods")
        .order_by("pk")
    )


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
        terms = _terms_cache()
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
    terms = _terms_cache()
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
    terms = _terms_cache()
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


# On-demand reads.


def _publish_read_command(serial: str, command_id: str) -> None:
    """Publish {"id", "type": "read"} to the meter's command topic, QoS 1, with the ingest account."""
    import json

    from mdms.core.mqtt import client as mqtt_client
    from mdms.core.mqtt import topics

    username, password = mqtt_client.ingest_credentials()
    client = mqtt_client.new_client(
        client_id=f"mdms-reads-{uuid.uuid4().hex[:8]}", username=username, password=password
    )
    mqtt_client.connect(client)
    client.loop_start()
    try:
        info = client.publish(
            topics.topic(serial, topics.Kind.COMMANDS), json.dumps({"id": command_id, "type": "read"}), qos=1
        )
        info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def on_demand_read_request(
    *,
    meter: Meter,
    purpose: str = OnDemandRead.Purpose.CHECK,
    account: Account | None = None,
    requested_by: User | None = None,
    timeout_s: int = READ_TIMEOUT_S,
    audit_actor: ApiToken | None = None,
) -> OnDemandRead:
    """Record the read and, once committed, send the command to the meter.

    The audit log names requested_by, or audit_actor when a machine client (an API token) asked.
    """
    now = timezone.now()
    read = OnDemandRead.objects.create(
        command_id=uuid.uuid4().hex,
        meter=meter,
        account=account,
        purpose=purpose,
        requested_by=requested_by,
        requested_at=now,
        timeout_at=now + dt.timedelta(seconds=timeout_s),
    )
    audit_record(
        actor=audit_actor or requested_by,
        action=AuditLog.Action.ON_DEMAND_READ,
        target=f"meter:{meter.serial}",
        detail={"read": read.pk, "purpose": purpose, "account": account.number if account else None},
    )

    def send() -> None:
        try:
            _publish_read_command(meter.serial, read.command_id)
        except Exception:  # the read stays pending and is estimated when it times out
            log.exception("could not send read %s to meter %s", read.command_id, meter.serial)

    transaction.on_commit(send)
    return read


def on_demand_read_complete(*, read: OnDemandRead) -> bool:
    """Complete a pending read from the meter's reply, if one arrived. True when it completed."""
    reply = stored.reply_for(read.meter_id, read.command_id)
    if reply is None:
        return False
    register_import = reply.get("register_import_kwh")
    register_export = reply.get("register_export_kwh")
    changed = OnDemandRead.objects.filter(pk=read.pk, status=OnDemandRead.Status.PENDING).update(
        status=OnDemandRead.Status.COMPLETED,
        completed_at=timezone.now(),
        read_at=reply.get("ts") or reply.get("received_at"),
        register_import_kwh=None if register_import is None else Decimal(str(register_import)),
        register_export_kwh=None if register_export is None else Decimal(str(register_export)),
        estimated=False,
    )
    if changed:
        read.refresh_from_db()
        _after_read(read)
    return bool(changed)


def on_demand_read_timeout(*, read: OnDemandRead, now: dt.datetime | None = None) -> bool:
    """Time out a pending read: estimate it from the newest interval data. True when it timed out."""
    now = now or timezone.now()
    if read.timeout_at > now:
        return False
    at, register_import, register_export = _estimate_registers(read.meter_id, now)
    changed = OnDemandRead.objects.filter(pk=read.pk, status=OnDemandRead.Status.PENDING).update(
        status=OnDemandRead.Status.TIMED_OUT,
        completed_at=now,
        read_at=at,
        register_import_kwh=register_import,
        register_export_kwh=register_export,
        estimated=True,
        note="no reply from the meter: estimated from interval data",
    )
    if changed:
        read.refresh_from_db()
        _after_read(read)
    return bool(changed)


def _estimate_registers(meter_pk: int, now: dt.datetime) -> tuple[dt.datetime, Decimal | None, Decimal | None]:
    """The newest register reading carried forward with the interval energy measured after it."""
    rows = stored.readings_for_meter(meter_pk, now - dt.timedelta(days=ESTIMATE_LOOKBACK_DAYS), now)
    base_import = base_export = None
    added_import = added_export = 0.0
    at = now
    for row in rows:
        if row.get("register_import_kwh") is not None:
            base_import = float(row["register_import_kwh"])
            base_export = row.get("register_export_kwh")
            added_import = added_export = 0.0
        else:
            added_import += float(row.get("energy_import_kwh") or 0.0)
            added_export += float(row.get("energy_export_kwh") or 0.0)
        at = row["ts"]
    if base_import is None:
        return now, None, None
    export = None if base_export is None else Decimal(str(round(float(base_export) + added_export, 3)))
    return at, Decimal(str(round(base_import + added_import, 3))), export


def _after_read(read: OnDemandRead) -> None:
    if read.purpose == OnDemandRead.Purpose.MOVE_OUT and read.account_id is not None:
        try:
            bill_final(read=read, created_by=read.requested_by)
        except Exception:
            log.exception("final bill for read %s failed", read.command_id)


def on_demand_reads_sweep(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Complete the pending reads that have a reply; time out those past their deadline."""
    now = now or timezone.now()
    counts = {"completed": 0, "timed_out": 0, "pending": 0}
    for read in OnDemandRead.objects.filter(status=OnDemandRead.Status.PENDING).order_by("pk"):
        if on_demand_read_complete(read=read):
            counts["completed"] += 1
        elif on_demand_read_timeout(read=read, now=now):
            counts["timed_out"] += 1
        else:
            counts["pending"] += 1
    return counts
