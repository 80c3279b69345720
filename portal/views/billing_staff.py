"""Billing staff's pages: runs with live progress, the VEE exception queue, on-demand reads, lookup.

Writes go through billing's services (billing.vee.services, billing.on_demand_reads), which check the role
again; only billing staff (and staff superusers) open these pages, anyone else gets a 404.
"""

from __future__ import annotations

import datetime as dt
import json

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from billing import on_demand_reads
from billing import selectors as usage
from billing.models import Bill, IntervalEdit, OnDemandRead, VeeException
from billing.vee import services as vee_services
from lake.errors import LakeError
from mdms.core import selectors as core_selectors
from mdms.core.localtime import local_today
from mdms.core.models import Account, Meter
from monitoring import selectors as monitoring
from portal import listing
from portal.views import billing_lists
from portal.views.operator_access import billing_required

RUNS_SHOWN = 30
READS_SHOWN = 30
LOOKUP_RESULTS = 25
# The status lists refresh this often while something is still running or pending.
LIVE_REFRESH_S = 2


def _runs_page(request: HttpRequest) -> dict[str, object]:
    form, runs = billing_lists.runs(request)
    page = listing.paged(request, runs, RUNS_SHOWN)
    return {"listing": page, "runs": page.rows, "filter_form": form}


@billing_required
@require_GET
def billing_runs(request: HttpRequest) -> HttpResponseBase:
    if listing.wants_csv(request):
        return listing.csv_response(
            name="billing-runs",
            header=["run", "run_date", "cycle_day", "period_start", "period_end", "status", "total", "done",
                    "bills_created", "already_billed", "failed"],
            rows=billing_lists.runs(request)[1].iterator(chunk_size=2000),
            row=lambda r: [r.pk, r.run_date, r.cycle_day, r.period_start, r.period_end, r.status, r.total, r.done,
                           r.bills_created, r.already_billed, r.failed],
        )  # fmt: skip
    return render(request, "portal/billing/runs.html", {**_runs_page(request), "refresh_s": LIVE_REFRESH_S})


@billing_required
@require_GET
@never_cache
def billing_runs_live(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/billing/_runs_table.html", _runs_page(request))


class ExceptionFilter(forms.Form):
    kind = forms.ChoiceField(choices=[("", "All kinds"), *VeeException.Kind.choices], required=False)
    status = forms.ChoiceField(
        choices=[(VeeException.Status.OPEN, "Open"), (VeeException.Status.RESOLVED, "Resolved"), ("all", "All")],
        required=False,
    )


@billing_required
@require_GET
def billing_vee_queue(request: HttpRequest) -> HttpResponseBase:
    form = ExceptionFilter(request.GET or None)
    kind: str | None = None
    status: str | None = VeeException.Status.OPEN
    if form.is_valid():
        kind = form.cleaned_data["kind"] or None
        chosen = form.cleaned_data["status"] or VeeException.Status.OPEN
        status = None if chosen == "all" else chosen
    queue = usage.vee_exception_list(status=status, kind=kind)
    if listing.wants_csv(request):
        return listing.csv_response(
            name="vee-exceptions",
            header=["exception", "meter", "kind", "status", "period_start", "period_end", "detail"],
            rows=queue.iterator(chunk_size=2000),
            row=lambda x: [x.pk, x.meter.serial, x.kind, x.status, listing.local_iso(x.period_start),
                           listing.local_iso(x.period_end), json.dumps(x.detail, default=str)],
        )  # fmt: skip
    page = listing.paged(request, queue)
    return render(request, "portal/billing/vee_queue.html", {"form": form, "listing": page, "exceptions": page.rows})


class EditForm(forms.Form):
    ts = listing.iso_datetime_field("Interval end")
    import_kwh = forms.FloatField(label="Import (kWh)", min_value=0)
    export_kwh = forms.FloatField(label="Export (kWh)", min_value=0, required=False)
    reason = forms.CharField(max_length=500)


class AcceptForm(forms.Form):
    ts = listing.iso_datetime_field("Interval end")
    reason = forms.CharField(max_length=500, required=False, label="Note (optional)")


class ResolveForm(forms.Form):
    resolution = forms.CharField(max_length=500, label="Resolution")


def _local_input(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


@billing_required
@require_http_methods(["GET", "POST"])
def billing_vee_exception(request: HttpRequest, exception_pk: int) -> HttpResponseBase:
    """One exception: its intervals with their sources, accept or edit them, resolve it; the audit trail."""
    exception = get_object_or_404(VeeException.objects.select_related("meter", "resolved_by"), pk=exception_pk)
    meter = exception.meter
    # At least a day of intervals, so an exception about one interval shows its neighbours.
    start = min(exception.period_start, exception.period_end - dt.timedelta(hours=2))
    end = max(exception.period_end, start + dt.timedelta(hours=6))
    forms_by_action: dict[str, forms.Form] = {
        "edit": EditForm(prefix="edit", initial={"ts": _local_input(exception.period_end), "reason": ""}),
        "accept": AcceptForm(prefix="accept", initial={"ts": _local_input(exception.period_end)}),
        "resolve": ResolveForm(prefix="resolve"),
    }
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action in forms_by_action:
            form = type(forms_by_action[action])(request.POST, prefix=action)
            forms_by_action[action] = form
            if form.is_valid() and _apply(request, action, form.cleaned_data, exception, meter):
                return redirect("billing_vee_exception", exception_pk=exception.pk)
    intervals = usage.interval_usage(meter_pk=meter.pk, start=start, end=end)
    audit = IntervalEdit.objects.filter(meter=meter).select_related("edited_by").order_by("-edited_at")[:50]
    context = {
        "exception": exception,
        "meter": meter,
        "intervals": intervals,
        "audit": audit,
        "forms": forms_by_action,
    }
    return render(request, "portal/billing/vee_exception.html", context)


def _apply(request: HttpRequest, action: str, data: dict[str, object], exception: VeeException, meter: Meter) -> bool:
    user = request.user
    try:
        if action == "edit":
            vee_services.interval_edit(
                meter=meter,
                ts=data["ts"],  # type: ignore[arg-type]
                import_kwh=data["import_kwh"],  # type: ignore[arg-type]
                export_kwh=data["export_kwh"],  # type: ignore[arg-type]
                reason=str(data["reason"]),
                user=user,  # type: ignore[arg-type]
            )
            messages.success(request, "Interval edited; the audit trail below has the old and new values.")
        elif action == "accept":
            vee_services.estimate_accept(meter=meter, ts=data["ts"], reason=str(data["reason"]), user=user)  # type: ignore[arg-type]
            messages.success(request, "Estimate accepted.")
        else:
            if not vee_services.vee_exception_resolve(
                exception=exception,
                user=user,  # type: ignore[arg-type]
                resolution=str(data["resolution"]),
            ):
                messages.warning(request, "Someone else resolved this exception first.")
            else:
                messages.success(request, "Exception resolved.")
    except ValidationError as exc:
        for text in exc.messages:
            messages.error(request, text)
        return False
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return False
    except LakeError as exc:  # the day was tiered and the lake cannot give it back just now
        messages.error(request, f"This day's raw readings are in the data lake and could not be read back: {exc}")
        return False
    return True


class ReadForm(forms.Form):
    meter = forms.CharField(label="Meter serial", max_length=64)
    purpose = forms.ChoiceField(choices=OnDemandRead.Purpose.choices, initial=OnDemandRead.Purpose.CHECK)
    account = forms.CharField(label="Account number (move-in/out)", max_length=20, required=False)

    def clean_meter(self) -> Meter:
        meter = Meter.objects.filter(serial=self.cleaned_data["meter"].strip()).first()
        if meter is None:
            raise ValidationError("No meter has this serial.")
        if not meter.can_connect:
            raise ValidationError("This meter cannot connect (not active): it would never answer.")
        return meter

    def clean_account(self) -> Account | None:
        number = self.cleaned_data["account"].strip()
        if not number:
            return None
        account = Account.objects.filter(number=number).first()
        if account is None:
            raise ValidationError("No account has this number.")
        return account


def _recent_reads(request: HttpRequest | None = None) -> list[OnDemandRead]:
    reads = (
        billing_lists.reads(request)[1]
        if request is not None
        else OnDemandRead.objects.select_related("meter", "account", "requested_by")
    )
    if request is None:
        return list(reads[:READS_SHOWN])
    return list(listing.paged(request, reads, READS_SHOWN).rows)


@billing_required
@require_http_methods(["GET", "POST"])
def billing_reads(request: HttpRequest) -> HttpResponseBase:
    form = ReadForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        read = on_demand_reads.on_demand_read_request(
            meter=form.cleaned_data["meter"],
            purpose=form.cleaned_data["purpose"],
            account=form.cleaned_data["account"],
            requested_by=request.user,  # type: ignore[arg-type]
        )
        messages.success(request, f"Read requested from meter {read.meter.serial}.")
        return redirect("billing_reads")
    filter_form, reads = billing_lists.reads(request)
    if listing.wants_csv(request):
        return listing.csv_response(
            name="on-demand-reads",
            header=["read", "meter", "account", "purpose", "status", "requested_at", "read_at", "register_import_kwh",
                    "register_export_kwh", "estimated", "note"],
            rows=reads.iterator(chunk_size=2000),
            row=lambda r: [r.pk, r.meter.serial, r.account.number if r.account else None, r.purpose, r.status,
                           listing.local_iso(r.requested_at), listing.local_iso(r.read_at), r.register_import_kwh,
                           r.register_export_kwh, r.estimated, r.note],
        )  # fmt: skip
    page = listing.paged(request, reads, READS_SHOWN)
    context = {"form": form, "filter_form": filter_form, "listing": page, "reads": page.rows,
               "refresh_s": LIVE_REFRESH_S}  # fmt: skip
    return render(request, "portal/billing/reads.html", context)


@billing_required
@require_GET
@never_cache
def billing_reads_live(request: HttpRequest) -> HttpResponse:
    """The read list, polled by the page: pending reads with a stored reply complete here.

    The beat sweep does the same every minute; doing it for the pending reads on screen (one
    indexed lookup each) shows a reply within seconds. Both are compare-and-swap, so they never race.
    """
    for read in OnDemandRead.objects.filter(status=OnDemandRead.Status.PENDING).order_by("-requested_at")[:READS_SHOWN]:
        if not on_demand_reads.on_demand_read_complete(read=read):
            on_demand_reads.on_demand_read_timeout(read=read)
    return render(request, "portal/billing/_reads_table.html", {"reads": _recent_reads(request)})


@billing_required
@require_GET
def billing_lookup(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()
    context: dict[str, object] = {"q": query}
    if query:
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
        context["accounts"] = listing.paged(request, accounts, LOOKUP_RESULTS, param="page", csv=False)
        meters = core_selectors.meter_search(text=query)
        context["meters"] = listing.paged(request, meters, LOOKUP_RESULTS, param="meters_page", csv=False)
    return render(request, "portal/billing/lookup.html", context)


@billing_required
@require_GET
def billing_account(request: HttpRequest, account_pk: int) -> HttpResponse:
    account = get_object_or_404(
        Account.objects.select_related("customer", "premise__feeder__region", "tariff"), pk=account_pk
    )
    # The bills table names each bill's account: joined here, not read once per row.
    bills = Bill.objects.filter(account=account).select_related("account").order_by("-period_start", "-version")
    meters = Meter.objects.filter(installations__premise=account.premise).distinct().order_by("serial")
    reads = OnDemandRead.objects.filter(account=account).select_related("meter")[:50]
    context = {"account": account, "bills": bills, "meters": meters, "reads": reads}
    return render(request, "portal/billing/account.html", context)


@billing_required
@require_GET
def billing_meter(request: HttpRequest, meter_pk: int) -> HttpResponse:
    """Everything about one meter: installations, accounts and bills at its premises, reads, edits, anomalies."""
    meter = get_object_or_404(Meter.objects.select_related("premise__feeder__region"), pk=meter_pk)
    installations = list(meter.installations.select_related("premise").order_by("-installed_on"))
    premise_pks = {i.premise_id for i in installations} | ({meter.premise_id} if meter.premise_id else set())
    accounts = Account.objects.filter(premise_id__in=premise_pks).select_related("customer", "tariff")
    bills = (
        Bill.objects.filter(account__premise_id__in=premise_pks)
        .select_related("account")
        .order_by("-period_start", "account__number", "-version")[:60]
    )
    today = local_today()
    days = usage.daily_usage(meter_pk=meter.pk, start=today - dt.timedelta(days=30), end=today + dt.timedelta(days=1))
    context = {
        "meter": meter,
        "installations": installations,
        "accounts": accounts,
        "bills": bills,
        "reads": OnDemandRead.objects.filter(meter=meter).select_related("meter")[:30],
        "edits": IntervalEdit.objects.filter(meter=meter).select_related("edited_by")[:50],
        "exceptions": VeeException.objects.filter(meter=meter).order_by("-period_start")[:30],
        "anomalies": monitoring.meter_anomaly_history(meter_pk=meter.pk, limit=30),
        "days": days,
    }
    return render(request, "portal/billing/meter.html", context)


__all__ = [
    "billing_account",
    "billing_lookup",
    "billing_meter",
    "billing_reads",
    "billing_reads_live",
    "billing_runs",
    "billing_runs_live",
    "billing_vee_exception",
    "billing_vee_queue",
]
