"""Writes on usage: VEE runs, interval edits and accepted estimates (with their audit trail), the exception queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from billing.models import IntervalEdit, VeeException
from billing.rollups import rollups_recompute
from billing.vee.estimation import estimate_day
from billing.vee.validation import FLAGGING_KINDS, record_findings, record_flags, validate_day
from lake.restore import lake_raw_ensure
from mdms.core import reading_quality
from mdms.core.audit import audit_record
from mdms.core.localtime import local_day
from mdms.core.models import AuditLog, Meter
from mdms.core.roles import Role, has_role
from mdms.core.timeseries import rollups as store


@dataclass(frozen=True)
class VeeRunResult:
    meter_days: int
    exceptions: int
    estimated_intervals: int


def vee_run(*, meter_pks: Sequence[int], first_day: dt.date, end_day: dt.date) -> VeeRunResult:
    """Validate and estimate every meter-day in [first_day, end_day), then refresh those rollups.

    Idempotent: a second run finds the same exceptions (refreshed, not duplicated) and writes the
    same estimates.
    """
    # Validating a day tiered to the data lake would find every interval missing: read it back first.
    lake_raw_ensure(first_day=first_day, end_day=end_day)
    now = timezone.now()
    meter_days = exceptions = estimated = 0
    meters = list(Meter.objects.filter(pk__in=meter_pks).order_by("pk"))
    for meter in meters:
        day = first_day
        while day < end_day:
            # Estimate first: the rollups the spike rule reads as history then include the estimates' flags.
            estimated += estimate_day(meter, day, now=now)
            findings = validate_day(meter, day, now=now)
            recorded = record_findings(meter, day, findings)
            record_flags(meter, day, findings, recorded)
            exceptions += len(recorded)
            meter_days += 1
            day += dt.timedelta(days=1)
    rollups_recompute(meter_pks=[meter.pk for meter in meters], first_day=first_day, end_day=end_day)
    return VeeRunResult(meter_days, exceptions, estimated)


def _require_billing(user: User) -> None:
    if not has_role(user, Role.BILLING):
        raise PermissionDenied("Only billing staff edit interval data.")


def _current(meter: Meter, ts: dt.datetime) -> dict[str, Any] | None:
    rows = store.effective_intervals(meter.pk, ts - dt.timedelta(microseconds=1), ts)
    return rows[0] if rows else None


def _interval_day(meter: Meter, ts: dt.datetime) -> dt.date:
    return local_day(ts - dt.timedelta(seconds=meter.interval_s))


def _check_interval(meter: Meter, ts: dt.datetime) -> None:
    if timezone.is_naive(ts):
        raise ValidationError({"ts": "The interval end must be timezone-aware."})
    midnight = ts.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if (ts - midnight).total_seconds() % meter.interval_s:
        raise ValidationError({"ts": f"Not the end of a {meter.interval_s}-second interval."})
    # An interval that has not ended has no value to correct yet (a typo like 2030 would stand for years).
    if ts > timezone.now():
        raise ValidationError({"ts": "This interval has not ended yet: only past intervals are edited."})


def interval_edit(
    *,
    meter: Meter,
    ts: dt.datetime,
    import_kwh: float,
    reason: str,
    user: User,
    export_kwh: float | None = None,
) -> IntervalEdit:
    """Billing staff set the value of one interval (ts = its end); the old value goes to the audit trail.

    The edit becomes the interval's effective value in every read and its day's rollup is recomputed.
    """
    _require_billing(user)
    _check_interval(meter, ts)
    if not reason.strip():
        raise ValidationError({"reason": "Say why the interval is edited."})
    if import_kwh < 0 or (export_kwh is not None and export_kwh < 0):
        raise ValidationError({"import_kwh": "Energy cannot be negative."})
    # The audit trail's old value, and the recompute, need the day's raw readings if it was tiered.
    day = _interval_day(meter, ts)
    lake_raw_ensure(first_day=day, end_day=day + dt.timedelta(days=1))
    with transaction.atomic():
        # Serialises edits of one meter: each audit row's old value is the previous row's new value.
        Meter.objects.select_for_update().filter(pk=meter.pk).first()
        current = _current(meter, ts)
        edit = IntervalEdit.objects.create(
            meter=meter,
            ts=ts,
            action=IntervalEdit.Action.EDIT,
            old_import_kwh=current.get("import_kwh") if current else None,
            old_export_kwh=current.get("export_kwh") if current else None,
            old_source=store.SOURCE_NAMES[current["source"]] if current else "",
            new_import_kwh=import_kwh,
            new_export_kwh=export_kwh,
            reason=reason.strip(),
            edited_by=user,
        )
        # Inside the transaction: if MongoDB refuses, the audit row is rolled back with it.
        store.set_interval_edit(
            meter_pk=meter.pk,
            ts=ts,
            import_kwh=import_kwh,
            export_kwh=export_kwh,
            interval_s=meter.interval_s,
            edit_id=edit.pk,
        )
        audit_record(
            actor=user,
            action=AuditLog.Action.READING_EDIT,
            target=f"meter:{meter.serial}",
            detail={"ts": ts.isoformat(), "import_kwh": import_kwh, "export_kwh": export_kwh, "edit": edit.pk},
        )
    rollups_recompute(meter_pks=[meter.pk], first_day=day, end_day=day + dt.timedelta(days=1))
    return edit


def estimate_accept(*, meter: Meter, ts: dt.datetime, reason: str, user: User) -> IntervalEdit:
    """Billing staff accept the estimate of one interval: it stays flagged estimated, now reviewed."""
    _require_billing(user)
    estimate = store.estimate_for(meter.pk, ts)
    if estimate is None:
        raise ValidationError({"ts": "This interval has no estimate."})
    with transaction.atomic():
        edit = IntervalEdit.objects.create(
            meter=meter,
            ts=ts,
            action=IntervalEdit.Action.ACCEPT_ESTIMATE,
            old_import_kwh=estimate["energy_import_kwh"],
            old_export_kwh=estimate.get("energy_export_kwh"),
            old_source="estimated",
            new_import_kwh=estimate["energy_import_kwh"],
            new_export_kwh=estimate.get("energy_export_kwh"),
            reason=reason.strip() or f"{estimate.get('method', 'estimate')} estimate accepted",
            edited_by=user,
        )
        store.mark_estimate_accepted(meter.pk, ts)
    return edit


def vee_exception_resolve(*, exception: VeeException, user: User, resolution: str) -> bool:
    """Close an open exception; False when someone else closed it first (compare-and-swap).

    The measured intervals it held questionable become validated (the value stands as measured;
    one billing staff changed is edited anyway), and their day's rollups follow.
    """
    _require_billing(user)
    updated = VeeException.objects.filter(pk=exception.pk, status=VeeException.Status.OPEN).update(
        status=VeeException.Status.RESOLVED,
        resolved_at=timezone.now(),
        resolved_by=user,
        resolution=resolution.strip(),
        updated_at=timezone.now(),
    )
    if updated == 1 and exception.kind in FLAGGING_KINDS:
        store.flags_set_for_exception(exception.pk, reading_quality.FLAG_VALIDATED)
        day = local_day(exception.period_start)
        rollups_recompute(meter_pks=[exception.meter_id], first_day=day, end_day=day + dt.timedelta(days=1))
    return updated == 1
