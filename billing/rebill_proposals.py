"""Re-bills proposed when actuals replace estimates that an issued bill priced.

An issued bill never changes by itself. When the rollup follower has recorded that measured readings
replaced estimates (billing.replacements), `rebill_proposals_judge` asks, for each current bill whose
days hold one of those intervals, what a re-bill would be today (bills.bill_rebill_preview, the
re-bill's own rules), and compares it with the bill as issued. When the difference is above the
thresholds (REBILL_PROPOSAL_MIN_KWH and/or REBILL_PROPOSAL_MIN_AMOUNT, as REBILL_PROPOSAL_RULE
says), a re-bill is proposed in the exception queue (VeeException kind `rebill_proposed`, one per
account and bill period: later replacements refresh it, and reopen it once worked). Billing staff
accept it (the re-bill is made through bills.bill_rebill, audited there) or dismiss it with a reason.

Each replacement is judged once (its outcome is kept), so the same replacement seen twice proposes
once. A bill whose data is not complete yet (rollups behind, intervals missing) is judged later.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.bills import BillHeld, bill_rebill, bill_rebill_preview
from billing.models import Bill, EstimateReplacement, VeeException
from mdms.core.localtime import local_day, local_midnight
from mdms.core.models import MeterInstallation
from mdms.core.roles import Role, has_role

# Replacements judged per call (the follower task calls it every 5 seconds).
JUDGE_LIMIT = 2_000


@dataclass(frozen=True)
class JudgeResult:
    judged: int
    proposed: int
    waiting: int


@dataclass(frozen=True)
class Difference:
    import_kwh: Decimal
    export_kwh: Decimal
    amount: Decimal

    @property
    def energy_kwh(self) -> Decimal:
        return max(abs(self.import_kwh), abs(self.export_kwh))

    def worth_proposing(self) -> bool:
        """Above the thresholds: strictly, so that a zero threshold proposes any difference and never none."""
        energy = self.energy_kwh > Decimal(str(settings.REBILL_PROPOSAL_MIN_KWH))
        money = abs(self.amount) > Decimal(str(settings.REBILL_PROPOSAL_MIN_AMOUNT))
        return (energy and money) if settings.REBILL_PROPOSAL_RULE == "both" else (energy or money)


def _interval_day(replacement: EstimateReplacement) -> dt.date:
    return local_day(replacement.ts - dt.timedelta(seconds=replacement.meter.interval_s))


def _bills_covering(replacement: EstimateReplacement) -> list[Bill]:
    """The current bills whose billed days hold this interval, on the premises the meter served that day."""
    day = _interval_day(replacement)
    premises = MeterInstallation.objects.filter(meter_id=replacement.meter_id, installed_on__lte=day).filter(
        Q(removed_on__isnull=True) | Q(removed_on__gt=day)
    )
    return list(
        Bill.objects.filter(
            account__premise_id__in=premises.values("premise_id"),
            is_current=True,
            period_start__lte=day,
            period_end__gt=day,
        ).select_related("account")
    )


def _difference(issued: Bill, preview: Bill) -> Difference:
    return Difference(
        import_kwh=preview.import_kwh - issued.import_kwh,
        export_kwh=preview.export_kwh - issued.export_kwh,
        amount=preview.total - issued.total,
    )


def rebill_proposals_judge(*, limit: int = JUDGE_LIMIT) -> JudgeResult:
    """Judge the replacements not judged yet: nothing billed, below the thresholds, or a re-bill proposed."""
    pending = list(
        EstimateReplacement.objects.filter(outcome=EstimateReplacement.Outcome.PENDING)
        .select_related("meter")
        .order_by("replaced_at", "pk")[:limit]
    )
    by_bill: dict[int, list[EstimateReplacement]] = defaultdict(list)
    bills: dict[int, Bill] = {}
    now = timezone.now()
    judged = waiting = 0
    # A replaced stretch is many intervals of one meter and day: one look-up of the bills per meter-day.
    covering_by_day: dict[tuple[int, dt.date], list[Bill]] = {}
    for replacement in pending:
        key = (replacement.meter_id, _interval_day(replacement))
        if key not in covering_by_day:
            covering_by_day[key] = _bills_covering(replacement)
        covering = covering_by_day[key]
        if not covering:
            replacement.outcome = EstimateReplacement.Outcome.NOT_BILLED
            replacement.judged_at = now
            replacement.save(update_fields=["outcome", "judged_at"])
            judged += 1
            continue
        for bill in covering:
            bills[bill.pk] = bill
            by_bill[bill.pk].append(replacement)
    outcomes: dict[int, tuple[str, Bill, VeeException | None]] = {}
    held: set[int] = set()
    proposals: dict[int, VeeException] = {}
    for bill_pk, replacements in by_bill.items():
        bill = bills[bill_pk]
        try:
            preview, _lines = bill_rebill_preview(bill=bill)
        except BillHeld:
            # The period's data is not complete yet (rollups behind, intervals missing): judged later.
            held.update(replacement.pk for replacement in replacements)
            continue
        difference = _difference(bill, preview)
        proposal = _propose(bill, replacements, preview, difference) if difference.worth_proposing() else None
        for replacement in replacements:
            if proposal is not None:
                outcomes[replacement.pk] = (EstimateReplacement.Outcome.PROPOSED, bill, proposal)
            elif replacement.pk not in outcomes:
                outcomes[replacement.pk] = (EstimateReplacement.Outcome.BELOW_THRESHOLD, bill, None)
        if proposal is not None:
            proposals[proposal.pk] = proposal
    for replacement in pending:
        if replacement.pk in held:
            waiting += 1
            continue
        if replacement.pk not in outcomes:
            continue
        outcome, bill, proposal = outcomes[replacement.pk]
        EstimateReplacement.objects.filter(pk=replacement.pk, outcome=EstimateReplacement.Outcome.PENDING).update(
            outcome=outcome, judged_at=now, bill=bill, proposal=proposal
        )
        judged += 1
    for proposal in proposals.values():
        _count_replacements(proposal)
    proposed = len(proposals)
    return JudgeResult(judged=judged, proposed=proposed, waiting=waiting)


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _kwh(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.001")))


@transaction.atomic
def _propose(
    bill: Bill, replacements: list[EstimateReplacement], preview: Bill, difference: Difference
) -> VeeException:
    """Open (or refresh, or reopen) the account's proposal for this bill period."""
    account = bill.account
    detail: dict[str, Any] = {
        "bill": bill.pk,
        "account": account.number,
        "account_pk": account.pk,
        "bill_period_start": bill.period_start.isoformat(),
        "bill_period_end": bill.period_end.isoformat(),
        "version": bill.version,
        "currency": bill.currency,
        "issued": {
            "import_kwh": _kwh(bill.import_kwh),
            "export_kwh": _kwh(bill.export_kwh),
            "estimated_kwh": _kwh(bill.estimated_kwh),
            "total": _money(bill.total),
        },
        "rebill": {
            "import_kwh": _kwh(preview.import_kwh),
            "export_kwh": _kwh(preview.export_kwh),
            "estimated_kwh": _kwh(preview.estimated_kwh),
            "total": _money(preview.total),
        },
        "delta_import_kwh": _kwh(difference.import_kwh),
        "delta_export_kwh": _kwh(difference.export_kwh),
        "delta_amount": _money(difference.amount),
        "thresholds": {
            "min_kwh": settings.REBILL_PROPOSAL_MIN_KWH,
            "min_amount": settings.REBILL_PROPOSAL_MIN_AMOUNT,
            "rule": settings.REBILL_PROPOSAL_RULE,
        },
        "judged_at": timezone.now().isoformat(),
    }
    start, end = local_midnight(bill.period_start), local_midnight(bill.period_end)
    existing = (
        VeeException.objects.select_for_update()
        .filter(kind=VeeException.Kind.REBILL_PROPOSED, period_start=start, detail__account_pk=account.pk)
        .first()
    )
    if existing is None:
        # Two judges at once (two follower tasks) meet at the unique (meter, kind, period_start): one
        # creates, the other fails here and its replacements stay pending for the next run.
        return VeeException.objects.create(
            meter=replacements[0].meter, kind=VeeException.Kind.REBILL_PROPOSED, period_start=start, period_end=end,
            detail=detail,
        )  # fmt: skip
    if existing.status == VeeException.Status.RESOLVED:
        # New actuals after the proposal was worked: open again, keeping what was decided before.
        detail["previous_resolution"] = existing.resolution
        existing.status = VeeException.Status.OPEN
        existing.resolved_at = None
        existing.resolved_by = None
        existing.resolution = ""
    existing.detail = {**existing.detail, **detail}
    existing.period_end = end
    existing.save()
    return existing


def _count_replacements(proposal: VeeException) -> None:
    rows = list(proposal.replacements.all())
    proposal.detail = {
        **proposal.detail,
        "intervals": len(rows),
        "estimate_import_kwh": round(sum(r.estimate_import_kwh for r in rows), 6),
        "actual_import_kwh": round(sum(r.actual_import_kwh or 0.0 for r in rows), 6),
    }
    proposal.save(update_fields=["detail", "updated_at"])


def _require_billing(user: User) -> None:
    if not has_role(user, Role.BILLING):
        raise PermissionDenied("Only billing staff work re-bill proposals.")


def _open_proposal(proposal: VeeException) -> VeeException:
    locked = VeeException.objects.select_for_update().get(pk=proposal.pk)
    if locked.kind != VeeException.Kind.REBILL_PROPOSED:
        raise ValidationError({"exception": "This exception is not a re-bill proposal."})
    if locked.status != VeeException.Status.OPEN:
        raise ValidationError({"exception": "This proposal has already been worked."})
    return locked


@transaction.atomic
def rebill_proposal_accept(*, proposal: VeeException, user: User) -> Bill:
    """Re-bill the account's current bill of the period (bills.bill_rebill: version n+1, audited) and close."""
    _require_billing(user)
    locked = _open_proposal(proposal)
    detail = locked.detail
    current = Bill.objects.filter(
        account_id=detail["account_pk"],
        period_start=dt.date.fromisoformat(detail["bill_period_start"]),
        period_end=dt.date.fromisoformat(detail["bill_period_end"]),
        is_current=True,
    ).first()
    if current is None:
        raise ValidationError(
            {"bill": "This period has no current bill any more (it was cancelled): nothing to re-bill."}
        )
    try:
        new = bill_rebill(
            bill=current, reason=f"Actual readings replaced estimates (proposal {locked.pk})", created_by=user
        )
    except BillHeld as exc:
        raise ValidationError({"bill": f"Not re-billed yet: {exc}"}) from exc
    locked.status = VeeException.Status.RESOLVED
    locked.resolved_at = timezone.now()
    locked.resolved_by = user
    locked.resolution = f"Re-billed: version {new.version}, {new.total} {new.currency} (was {current.total})."
    locked.detail = {**detail, "rebill_bill": new.pk}
    locked.save()
    return new


@transaction.atomic
def rebill_proposal_dismiss(*, proposal: VeeException, user: User, reason: str) -> VeeException:
    """Close the proposal without a re-bill; the issued bill stands. The reason is kept."""
    _require_billing(user)
    if not reason.strip():
        raise ValidationError({"reason": "Say why no re-bill is made."})
    locked = _open_proposal(proposal)
    locked.status = VeeException.Status.RESOLVED
    locked.resolved_at = timezone.now()
    locked.resolved_by = user
    locked.resolution = f"Dismissed: {reason.strip()}"
    locked.save()
    return locked
