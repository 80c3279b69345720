"""On-demand (off-cycle) reads: ask a meter for its registers, complete the read from its reply, or
estimate it when the meter does not answer in time. A move-out read ends in the final bill.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from billing.bills import bill_final
from billing.models import OnDemandRead
from commands.kinds import Kind
from commands.models import MeterCommand
from commands.services import command_request, replies_apply
from mdms.core import registers
from mdms.core.audit import audit_record
from mdms.core.localtime import local_day
from mdms.core.models import Account, ApiToken, AuditLog, Meter, MeterInstallation
from mdms.core.timeseries import readings as stored

log = logging.getLogger(__name__)

# How long a meter has to answer an on-demand read before the read is estimated.
READ_TIMEOUT_S = 120
# On-demand reads go before routine commands to the same meter (1 lowest, 9 most urgent).
READ_PRIORITY = 7
# A timed-out read is estimated from the newest register reading within this many days.
ESTIMATE_LOOKBACK_DAYS = 7
# A reply stamped this long before the request (a stale reply, a meter clock that is wrong), or
# after the moment it is processed (plus clock skew), is not trusted: flagged, and no final bill.
REPLY_EARLIEST = dt.timedelta(minutes=15)
REPLY_SKEW = dt.timedelta(minutes=2)


def meter_serves_account(*, meter: Meter, account: Account, at: dt.datetime) -> None:
    """ValidationError unless the meter is installed at the account's premise on that day, and the
    account is open then: a move-out read of another premise's meter would bill the wrong customer."""
    day = local_day(at)
    installed = (
        MeterInstallation.objects.filter(meter=meter, premise_id=account.premise_id, installed_on__lte=day)
        .filter(Q(removed_on__isnull=True) | Q(removed_on__gt=day))
        .exists()
    )
    if not installed:
        raise ValidationError(
            {"account": f"Meter {meter.serial} does not serve the premise of account {account.number} on {day}."},
            code="meter_not_at_premise",
        )
    if account.move_in_date > day or (account.move_out_date is not None and account.move_out_date < day):
        raise ValidationError({"account": f"Account {account.number} is not open on {day}."}, code="account_closed")


def reply_time_problem(*, read_at: dt.datetime, requested_at: dt.datetime, now: dt.datetime) -> str:
    """Why a reply's time cannot be the time of this read; "" when it can."""
    if read_at < requested_at - REPLY_EARLIEST:
        return (
            f"the meter's reply is stamped {timezone.localtime(read_at):%d %b %Y %H:%M}, "
            f"{_ago(requested_at - read_at)} before the request: a stale reply or a wrong meter clock"
        )
    if read_at > now + REPLY_SKEW:
        return f"the meter's reply is stamped {timezone.localtime(read_at):%d %b %Y %H:%M}, in the future: a wrong meter clock"
    return ""


def _ago(delta: dt.timedelta) -> str:
    if delta >= dt.timedelta(days=2):
        return f"{delta.days} days"
    if delta >= dt.timedelta(hours=2):
        return f"{int(delta.total_seconds() // 3600)} hours"
    return f"{int(delta.total_seconds() // 60)} minutes"


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
    if account is not None:
        meter_serves_account(meter=meter, account=account, at=now)
    command, _ = command_request(
        meter=meter,
        kind=Kind.READ,
        priority=READ_PRIORITY,
        deadline=now + dt.timedelta(seconds=timeout_s),
        reason=f"{purpose} read" + (f" for {account.number}" if account else ""),
        requested_by=requested_by,
        token=audit_actor,
        audit=False,  # the read's own audit row below says it, with its purpose and account
    )
    read = OnDemandRead.objects.create(
        command_id=command.command_id,
        meter_command=command,
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
    return read


def on_demand_read_complete(*, read: OnDemandRead, apply_replies: bool = True) -> bool:
    """Complete a pending read from its command, if the meter answered. True when it completed.

    apply_replies first moves every command in flight by the replies stored (a sweep does it once)."""
    if apply_replies:
        replies_apply()
    command = read.meter_command
    if command is None:
        return False
    command.refresh_from_db()
    if command.status != MeterCommand.Status.COMPLETED:
        return False
    result = command.result
    register_import = result.get("register_import_kwh")
    register_export = result.get("register_export_kwh")
    now = timezone.now()
    read_at = dt.datetime.fromisoformat(result["ts"]) if result.get("ts") else command.finished_at
    problem = reply_time_problem(read_at=read_at, requested_at=read.requested_at, now=now) if read_at else ""
    changed = OnDemandRead.objects.filter(pk=read.pk, status=OnDemandRead.Status.PENDING).update(
        status=OnDemandRead.Status.COMPLETED,
        completed_at=now,
        read_at=read_at,
        register_import_kwh=None if register_import is None else Decimal(str(register_import)),
        register_export_kwh=None if register_export is None else Decimal(str(register_export)),
        estimated=False,
        time_suspect=bool(problem),
        note=f"Not trusted: {problem}. No final bill was issued from it; request the read again."[:200]
        if problem
        else "",
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
    digits, decimals = Meter.objects.filter(pk=meter_pk).values_list("register_digits", "register_decimals").get()
    # The estimate wraps past the register's capacity as the meter itself would.
    capacity = registers.capacity_kwh(digits=digits, decimals=decimals)
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
    export = (
        None
        if base_export is None
        else Decimal(str(round(registers.advance(float(base_export), added_export, capacity=capacity), 3)))
    )
    return at, Decimal(str(round(registers.advance(base_import, added_import, capacity=capacity), 3))), export


def _after_read(read: OnDemandRead) -> None:
    if read.purpose == OnDemandRead.Purpose.MOVE_OUT and read.account_id is not None and not read.time_suspect:
        try:
            bill_final(read=read, created_by=read.requested_by)
        except ValueError as exc:  # held (incomplete data), or a read after the move-out: staff see why
            OnDemandRead.objects.filter(pk=read.pk).update(note=f"No final bill: {exc}"[:200])
        except Exception:
            log.exception("final bill for read %s failed", read.command_id)


def on_demand_reads_sweep(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Complete the pending reads that have a reply; time out those past their deadline."""
    now = now or timezone.now()
    counts = {"completed": 0, "timed_out": 0, "pending": 0}
    replies_apply(now=now)
    for read in (
        OnDemandRead.objects.filter(status=OnDemandRead.Status.PENDING).select_related("meter_command").order_by("pk")
    ):
        if on_demand_read_complete(read=read, apply_replies=False):
            counts["completed"] += 1
        elif on_demand_read_timeout(read=read, now=now):
            counts["timed_out"] += 1
        else:
            counts["pending"] += 1
    return counts
