"""What billing staff look up: recent runs and reads, the VEE audit trail, and an account's or a
meter's billing record (bills, reads, edits, exceptions). Reads only; the portal's billing pages
show them.

Every query joins what its page prints per row (select_related), so a page of 50 rows is one query.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404

from billing.models import Bill, BillingRun, EstimateReplacement, IntervalEdit, OnDemandRead, VeeException
from mdms.core.models import Account, Meter, MeterInstallation
from mdms.core.selectors import meter_search


def billing_runs_recent(*, limit: int) -> list[BillingRun]:
    return list(BillingRun.objects.select_related("created_by")[:limit])


def on_demand_reads_recent(*, limit: int) -> list[OnDemandRead]:
    return list(OnDemandRead.objects.select_related("meter", "account", "requested_by")[:limit])


def on_demand_reads_pending(*, limit: int) -> list[OnDemandRead]:
    """The newest pending reads, those a page polling for replies has on screen."""
    pending = OnDemandRead.objects.filter(status=OnDemandRead.Status.PENDING).select_related("meter")
    return list(pending.order_by("-requested_at")[:limit])


def bill_get(*, bill_pk: int) -> Bill:
    """One bill with its lines and who cancelled it, if anyone (the bill page and its cancel form)."""
    bill = (
        Bill.objects.select_related("account", "cancelled_by").prefetch_related("line_items").filter(pk=bill_pk).first()
    )
    if bill is None:
        raise Http404("No such bill")
    return bill


def vee_exception_get(*, exception_pk: int) -> VeeException:
    exception = VeeException.objects.select_related("meter", "resolved_by").filter(pk=exception_pk).first()
    if exception is None:
        raise Http404("No such exception")
    return exception


def proposal_replacements(*, proposal: VeeException, limit: int = 500) -> list[EstimateReplacement]:
    """The intervals whose actuals made a re-bill proposal, by meter and time."""
    return list(proposal.replacements.select_related("meter").order_by("meter__serial", "ts")[:limit])


def interval_edits(*, meter_pk: int, limit: int = 50) -> list[IntervalEdit]:
    """A meter's interval edits and accepted estimates, newest first: the audit trail."""
    return list(IntervalEdit.objects.filter(meter_id=meter_pk).select_related("edited_by")[:limit])


def billing_lookup(*, query: str) -> tuple[QuerySet[Account], QuerySet[Meter]]:
    """Accounts by number, customer name or e-mail, address or city, and meters as staff's "find a
    meter" finds them (serial, address, customer, feeder), both ordered for paging."""
    accounts = (
        Account.objects.filter(
            Q(number__iexact=query)
            | Q(customer__name__icontains=query)
            | Q(customer__email__icontains=query)
            | Q(premise__address__icontains=query)
            | Q(premise__city__icontains=query)
        )
        .select_related("customer", "premise", "tariff")
        .order_by("number")
    )
    return accounts, meter_search(text=query)


@dataclass(frozen=True)
class AccountRecord:
    account: Account
    bills: QuerySet[Bill]  # every version, newest period first
    meters: QuerySet[Meter]  # every meter ever installed at the account's premise
    reads: QuerySet[OnDemandRead]


def account_record(*, account_pk: int) -> AccountRecord:
    account = (
        Account.objects.select_related("customer", "premise__feeder__region", "tariff").filter(pk=account_pk).first()
    )
    if account is None:
        raise Http404("No such account")
    return AccountRecord(
        account=account,
        # The bills table names each bill's account: joined here, not read once per row.
        bills=Bill.objects.filter(account=account).select_related("account").order_by("-period_start", "-version"),
        meters=Meter.objects.filter(installations__premise=account.premise).distinct().order_by("serial"),
        reads=OnDemandRead.objects.filter(account=account).select_related("meter")[:50],
    )


@dataclass(frozen=True)
class MeterRecord:
    meter: Meter
    installations: list[MeterInstallation]  # newest first
    accounts: QuerySet[Account]  # every account at any premise the meter was installed at
    bills: QuerySet[Bill]
    reads: QuerySet[OnDemandRead]
    edits: list[IntervalEdit]
    exceptions: QuerySet[VeeException]


def meter_record(*, meter_pk: int) -> MeterRecord:
    meter = Meter.objects.select_related("premise__feeder__region").filter(pk=meter_pk).first()
    if meter is None:
        raise Http404("No such meter")
    installations = list(meter.installations.select_related("premise").order_by("-installed_on"))
    premise_pks = {i.premise_id for i in installations} | ({meter.premise_id} if meter.premise_id else set())
    return MeterRecord(
        meter=meter,
        installations=installations,
        accounts=Account.objects.filter(premise_id__in=premise_pks).select_related("customer", "tariff"),
        bills=(
            Bill.objects.filter(account__premise_id__in=premise_pks)
            .select_related("account")
            .order_by("-period_start", "account__number", "-version")[:60]
        ),
        reads=OnDemandRead.objects.filter(meter=meter).select_related("meter")[:30],
        edits=interval_edits(meter_pk=meter.pk),
        exceptions=VeeException.objects.filter(meter=meter).order_by("-period_start")[:30],
    )
