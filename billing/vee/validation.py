"""VEE validation: the rules a meter-day's raw readings must pass, and the exceptions they raise.

Each rule looks at one meter and one local day and yields at most one finding; a finding becomes
(or refreshes) one open VeeException per (meter, kind, day), so validating again changes nothing
and a resolved exception stays resolved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from billing.models import VeeException
from mdms.core import reading_quality, registers
from mdms.core.localtime import local_midnight
from mdms.core.models import Meter
from mdms.core.reading_fields import DEFAULT_INTERVAL_S
from mdms.core.timeseries import rollups as store
from mdms.core.timeseries.readings import measured

Kind = VeeException.Kind

# A spike is an interval above this many times the meter's mean interval over its history...
SPIKE_FACTOR = 10.0
# ... and above this much energy per interval (a near-idle meter would otherwise flag a kettle).
SPIKE_MIN_KWH = 1.0
# The history a spike is judged against, and how much of it must exist to judge at all.
HISTORY_DAYS = 28
HISTORY_MIN_INTERVALS = 96
# Registers and interval sums may differ by rounding: this much, or this share of the delta.
REGISTER_TOLERANCE_KWH = 0.01
REGISTER_TOLERANCE_SHARE = 0.01
# The longest list of timestamps kept in an exception's detail (the count is always exact).
DETAIL_TIMES = 50


@dataclass
class Finding:
    kind: str
    times: list[dt.datetime] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def _first_copies(copies: Sequence[dict[str, Any]]) -> dict[dt.datetime, list[dict[str, Any]]]:
    by_ts: dict[dt.datetime, list[dict[str, Any]]] = {}
    for copy in copies:
        by_ts.setdefault(copy["ts"], []).append(copy)
    return by_ts


def expected_times(start: dt.datetime, end: dt.datetime, interval_s: int, now: dt.datetime) -> list[dt.datetime]:
    """The interval ends of the intervals starting in [start, end) that have ended by now."""
    step = dt.timedelta(seconds=interval_s)
    times, ts = [], start + step
    while ts <= end and ts <= now:
        times.append(ts)
        ts += step
    return times


def check_missing(by_ts: dict[dt.datetime, Any], expected: Sequence[dt.datetime]) -> Finding | None:
    missing = [ts for ts in expected if ts not in by_ts]
    return Finding(Kind.MISSING_INTERVALS, missing) if missing else None


def check_negative(by_ts: dict[dt.datetime, list[dict[str, Any]]]) -> Finding | None:
    times = [
        ts
        for ts, copies in by_ts.items()
        if any((copies[0].get(name) or 0) < 0 for name in ("energy_import_kwh", "energy_export_kwh"))
    ]
    return Finding(Kind.NEGATIVE, times) if times else None


def check_conflicting_duplicates(by_ts: dict[dt.datetime, list[dict[str, Any]]]) -> Finding | None:
    times = [ts for ts, copies in by_ts.items() if any(measured(c) != measured(copies[0]) for c in copies[1:])]
    return Finding(Kind.CONFLICTING_DUPLICATE, times) if times else None


def check_spikes(by_ts: dict[dt.datetime, list[dict[str, Any]]], history_mean: float, history_n: int) -> Finding | None:
    if history_n < HISTORY_MIN_INTERVALS:
        return None
    limit = max(SPIKE_FACTOR * history_mean, SPIKE_MIN_KWH)
    times = [ts for ts, copies in by_ts.items() if (copies[0].get("energy_import_kwh") or 0) > limit]
    if not times:
        return None
    return Finding(Kind.SPIKE, times, {"limit_kwh": round(limit, 6), "history_mean_kwh": round(history_mean, 6)})


def check_register_delta(
    by_ts: dict[dt.datetime, list[dict[str, Any]]], *, capacity_kwh: float | None = None
) -> Finding | None:
    """The register's rise from the day's first to its last reading against the intervals in between.

    A register that wrapped past its capacity (mdms.core.registers) by the interval energy is a
    rollover, not a mismatch; any other drop is flagged, with how far it went back.
    """
    with_register = [(ts, copies[0]) for ts, copies in sorted(by_ts.items()) if "register_import_kwh" in copies[0]]
    if len(with_register) < 2:
        return None
    (first_ts, first), (last_ts, last) = with_register[0], with_register[-1]
    summed = sum(copies[0].get("energy_import_kwh") or 0.0 for ts, copies in by_ts.items() if first_ts < ts <= last_ts)
    step = registers.register_delta(
        first["register_import_kwh"], last["register_import_kwh"], capacity=capacity_kwh, expected=summed
    )
    delta = step.kwh if step.kwh is not None else last["register_import_kwh"] - first["register_import_kwh"]
    if not step.backwards and abs(delta - summed) <= max(REGISTER_TOLERANCE_KWH, REGISTER_TOLERANCE_SHARE * abs(delta)):
        return None
    detail = {"register_delta_kwh": round(delta, 6), "interval_sum_kwh": round(summed, 6)}
    if step.backwards:
        detail["backwards"] = True
    return Finding(Kind.REGISTER_MISMATCH, [first_ts, last_ts], detail)


def check_installation(
    by_ts: dict[dt.datetime, Any],
    install_date: dt.date | None,
    removal_date: dt.date | None,
    *,
    installed_at: dt.datetime | None = None,
    removed_at: dt.datetime | None = None,
) -> Finding | None:
    """Readings of intervals starting before the installation or at/after the removal.

    The exact moments of an exchange, when known, win over the days (an exchange day is shared).
    """
    installed = installed_at or (local_midnight(install_date) if install_date else None)
    removed = removed_at or (local_midnight(removal_date) if removal_date else None)
    times = [
        ts
        for ts, copies in by_ts.items()
        if (installed is not None and ts <= installed)
        or (
            removed is not None
            and ts - dt.timedelta(seconds=copies[0].get("interval_s") or DEFAULT_INTERVAL_S) >= removed
        )
    ]
    return Finding(Kind.OUTSIDE_INSTALLATION, times) if times else None


def validate_day(meter: Meter, day: dt.date, *, now: dt.datetime) -> list[Finding]:
    """Every rule over one meter's local day; the findings, none when the day is clean."""
    start, end = local_midnight(day), local_midnight(day + dt.timedelta(days=1))
    by_ts = _first_copies(store.raw_copies(meter.pk, start, end))
    history_mean, history_n = store.history_mean_import(meter.pk, day - dt.timedelta(days=HISTORY_DAYS), day)
    findings = [
        check_missing(by_ts, _expected_while_installed(meter, start, end, now)),
        check_negative(by_ts),
        check_conflicting_duplicates(by_ts),
        check_spikes(by_ts, history_mean, history_n),
        check_register_delta(by_ts, capacity_kwh=meter.register_capacity_kwh),
        check_installation(
            by_ts, meter.install_date, meter.removal_date, installed_at=meter.installed_at, removed_at=meter.removed_at
        ),
    ]
    return [finding for finding in findings if finding is not None]


def _expected_while_installed(
    meter: Meter, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[dt.datetime]:
    # A meter is not missing intervals before it was installed or after it was removed.
    # An exchange between two interval ends: the intervals wholly on the meter's side of it.
    step = meter.interval_s
    if meter.installed_at:
        start = max(start, dt.datetime.fromtimestamp(-(-meter.installed_at.timestamp() // step) * step, dt.UTC))
    elif meter.install_date:
        start = max(start, local_midnight(meter.install_date))
    if meter.removed_at:
        end = min(end, dt.datetime.fromtimestamp(meter.removed_at.timestamp() // step * step, dt.UTC))
    elif meter.removal_date:
        end = min(end, local_midnight(meter.removal_date))
    return expected_times(start, end, meter.interval_s, now) if start < end else []


# The rules whose findings name the measured intervals that failed them. Those intervals are
# questionable (reading_quality.QUESTIONABLE) while their exception is open, validated once billing
# staff closed it. Missing intervals have no measured value, and a register mismatch is the day's,
# not one interval's: neither flags intervals.
FLAGGING_KINDS = frozenset({Kind.NEGATIVE, Kind.SPIKE, Kind.CONFLICTING_DUPLICATE, Kind.OUTSIDE_INSTALLATION})


def record_flags(meter: Meter, day: dt.date, findings: Sequence[Finding], exceptions: Sequence[VeeException]) -> int:
    """Flag the intervals each finding names, in the state of the exception that holds it; a rule that
    no longer fires on the day drops its flags. Returns how many intervals are flagged."""
    start, end = local_midnight(day), local_midnight(day + dt.timedelta(days=1))
    rules, flagged = [], 0
    for finding, exception in zip(findings, exceptions, strict=True):
        if finding.kind not in FLAGGING_KINDS:
            continue
        open_ = exception.status == VeeException.Status.OPEN
        store.flags_replace(
            meter_pk=meter.pk,
            start=start,
            end=end,
            rule=str(finding.kind),
            times=finding.times,
            flag=reading_quality.FLAG_QUESTIONABLE if open_ else reading_quality.FLAG_VALIDATED,
            exception=exception.pk,
        )
        rules.append(str(finding.kind))
        flagged += len(finding.times)
    store.flags_clear(meter_pk=meter.pk, start=start, end=end, keep_rules=rules)
    return flagged


@transaction.atomic
def record_findings(meter: Meter, day: dt.date, findings: Sequence[Finding]) -> list[VeeException]:
    """One exception per (meter, kind, day): created, or its detail refreshed while it is open."""
    start, end = local_midnight(day), local_midnight(day + dt.timedelta(days=1))
    recorded = []
    for finding in findings:
        detail = {
            **finding.detail,
            "count": len(finding.times),
            "times": [ts.isoformat() for ts in sorted(finding.times)[:DETAIL_TIMES]],
        }
        exception, created = VeeException.objects.select_for_update().get_or_create(
            meter=meter, kind=finding.kind, period_start=start, defaults={"period_end": end, "detail": detail}
        )
        if not created and exception.status == VeeException.Status.OPEN and exception.detail != detail:
            exception.detail = detail
            exception.save(update_fields=["detail", "updated_at"])
        recorded.append(exception)
    return recorded
