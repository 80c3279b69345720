"""Billing staff's pages: runs with live progress, the VEE exception queue, on-demand reads, lookup, and
the SFTP delivery log of the outbox.

Writes go through billing's services (billing.vee.services, billing.on_demand_reads), which check the role
again; only billing staff (and staff superusers) open these pages, anyone else gets a 404.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from billing import bills as bill_services
from billing import on_demand_reads, rebill_proposals, records
from billing import selectors as usage
from billing.billable_usage import bill_intervals
from billing.models import Bill, OnDemandRead, VeeException
from billing.sftp import SftpTarget
from billing.vee import services as vee_services
from lake.errors import LakeError
from mdms.core import reading_quality
from mdms.core import selectors as core
from mdms.core import services as core_services
from mdms.core.localtime import local_today
from mdms.core.models import Account, Meter
from mdms.core.mqtt import certificates
from monitoring import selectors as monitoring
from portal import listing
from portal.views import billing_lists
from portal.views.operator_access import billing_required

RUNS_SHOWN = 30
READS_SHOWN = 30
LOOKUP_RESULTS = 25
DELIVERIES_SHOWN = 100
# The status lists refresh this often while something is still running or pending.
LIVE_REFRESH_S = 2


def _runs_page(request: HttpRequest) -> dict[str, object]:
    form, runs = billing_lists.runs(request)
    page = listing.paged(request, runs, RUNS_SHOWN)
    return {"listing": page, "runs": page.rows, "filter_form": form}


class RunForm(forms.Form):
    run_date = forms.DateField(
        label="Billing date (YYYY-MM-DD)",
        input_formats=["%Y-%m-%d"],
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD"}),
    )


@billing_required
@require_http_methods(["GET", "POST"])
def billing_runs(request: HttpRequest) -> HttpResponseBase:
    """The runs, paged and filtered (CSV too); a form starts (or starts again) the run of a date, with the
    scheduled run's guards."""
    if request.method == "GET" and listing.wants_csv(request):
        return listing.csv_response(
            name="billing-runs",
            header=["run", "run_date", "cycle_day", "period_start", "period_end", "status", "total", "done",
                    "bills_created", "already_billed", "failed"],
            rows=billing_lists.runs(request)[1].iterator(chunk_size=2000),
            row=lambda r: [r.pk, r.run_date, r.cycle_day, r.period_start, r.period_end, r.status, r.total, r.done,
                           r.bills_created, r.already_billed, r.failed],
        )  # fmt: skip
    form = RunForm(request.POST or None, initial={"run_date": local_today().isoformat()})
    if request.method == "POST" and form.is_valid():
        try:
            run = bill_services.bill_run_start(
                run_date=form.cleaned_data["run_date"],
                created_by=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            for text in exc.messages:
                messages.error(request, text)
        else:
            messages.success(
                request, f"Run of {run.run_date:%d %b %Y} queued: accounts already billed are not billed again."
            )
            return redirect("billing_runs")
    context = {**_runs_page(request), "refresh_s": LIVE_REFRESH_S, "form": form}
    return render(request, "portal/billing/runs.html", context)


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
    exception = records.vee_exception_get(exception_pk=exception_pk)
    if exception.kind == VeeException.Kind.REBILL_PROPOSED:
        return _rebill_proposal(request, exception)
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
            if (
                form.is_valid()
                and _within(request, form, start, end)
                and _apply(request, action, form.cleaned_data, exception, meter)
            ):
                return redirect("billing_vee_exception", exception_pk=exception.pk)
    intervals = usage.interval_usage(meter_pk=meter.pk, start=start, end=end)
    audit = records.interval_edits(meter_pk=meter.pk)
    context = {
        "exception": exception,
        "meter": meter,
        "intervals": intervals,
        "audit": audit,
        "forms": forms_by_action,
    }
    return render(request, "portal/billing/vee_exception.html", context)


def _within(request: HttpRequest, form: forms.Form, start: dt.datetime, end: dt.datetime) -> bool:
    """An edit or an accept from an exception's page is about the intervals this page shows."""
    ts = form.cleaned_data.get("ts")
    if ts is None or start < ts <= end:
        return True
    messages.error(
        request,
        f"{timezone.localtime(ts):%d %b %Y %H:%M} is outside this exception's intervals "
        f"({timezone.localtime(start):%d %b %Y %H:%M} to {timezone.localtime(end):%d %b %Y %H:%M}).",
    )
    return False


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


class DismissForm(forms.Form):
    reason = forms.CharField(max_length=400, label="Why is no re-bill made?")


def _rebill_proposal(request: HttpRequest, proposal: VeeException) -> HttpResponseBase:
    """A re-bill proposed because actuals replaced billed estimates: the bill as issued against the re-bill,
    the intervals replaced (estimate and actual, with the method), accept (re-bill) or dismiss."""
    dismiss = DismissForm(request.POST if request.POST.get("action") == "dismiss" else None, prefix="dismiss")
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "accept":
                new = rebill_proposals.rebill_proposal_accept(proposal=proposal, user=request.user)  # type: ignore[arg-type]
                messages.success(request, f"Re-billed: version {new.version} is now the customer's bill.")
                return redirect("billing_bill", bill_pk=new.pk)
            if action == "dismiss" and dismiss.is_valid():
                rebill_proposals.rebill_proposal_dismiss(
                    proposal=proposal,
                    user=request.user,  # type: ignore[arg-type]
                    reason=dismiss.cleaned_data["reason"],
                )
                messages.success(request, "Proposal dismissed: the issued bill stands.")
                return redirect("billing_vee_exception", exception_pk=proposal.pk)
        except ValidationError as exc:
            for text in exc.messages:
                messages.error(request, text)
        except PermissionDenied as exc:
            messages.error(request, str(exc))
    context = {
        "exception": proposal,
        "detail": proposal.detail,
        "replacements": records.proposal_replacements(proposal=proposal),
        "dismiss_form": dismiss,
    }
    return render(request, "portal/billing/rebill_proposal.html", context)


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=200, label="Why is it cancelled?")


@billing_required
@require_http_methods(["GET", "POST"])
def billing_bill(request: HttpRequest, bill_pk: int) -> HttpResponseBase:
    """One bill with its lines; billing staff cancel a wrongly issued one here."""
    bill = records.bill_get(bill_pk=bill_pk)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            bill_services.bill_cancel(bill=bill, reason=form.cleaned_data["reason"], cancelled_by=request.user)  # type: ignore[arg-type]
        except ValidationError as exc:
            for text in exc.messages:
                messages.error(request, text)
        else:
            messages.success(request, "Bill cancelled: the customer no longer sees it, and the audit log has it.")
            return redirect("billing_bill", bill_pk=bill.pk)
    return render(
        request, "portal/billing/bill.html", {"bill": bill, "form": form, "quality_rows": _quality_rows(bill)}
    )


def _quality_rows(bill: Bill) -> list[dict[str, object]]:
    """The bill's intervals per quality code, as its determinants recorded them when it was priced."""
    counts: dict[str, int] = bill.determinants.get("intervals_by_quality") or {}
    shares: dict[str, str] = bill.determinants.get("quality_share") or {}
    return [
        {"quality": quality, "intervals": counts[quality.code], "share": Decimal(shares.get(quality.code, "0"))}
        for quality in reading_quality.QUALITIES
        if counts.get(quality.code)
    ]


# One page of a bill's intervals: a month of 15-minute intervals is three pages.
BILL_INTERVALS_SHOWN = 1000


class BillIntervalsFilter(forms.Form):
    quality = forms.ChoiceField(
        required=False,
        choices=[("", "every quality"), ("estimated", "every estimate")]
        + [(q.code, q.label) for q in reading_quality.QUALITIES],
    )


@billing_required
@require_GET
def billing_bill_intervals(request: HttpRequest, bill_pk: int) -> HttpResponseBase:
    """Every interval behind a bill's energy, how each was obtained, and the sums per quality code."""
    bill = records.bill_get(bill_pk=bill_pk)
    form = BillIntervalsFilter(request.GET or None)
    wanted = None
    if form.is_valid() and form.cleaned_data["quality"]:
        wanted = reading_quality.parse_filter(form.cleaned_data["quality"])
    intervals = bill_intervals(bill, quality=wanted)
    sums: dict[str, list[float]] = {}
    for row in intervals:
        slot = sums.setdefault(row.interval.usage.quality, [0, 0.0, 0.0])
        slot[0] += 1
        slot[1] += row.interval.usage.import_kwh or 0.0
        slot[2] += row.billed_import_kwh or 0.0
    summary = [
        {"quality": q, "intervals": int(sums[q.code][0]), "import_kwh": sums[q.code][1], "billed_kwh": sums[q.code][2]}
        for q in reading_quality.QUALITIES
        if q.code in sums
    ]
    page = listing.paged(request, intervals, BILL_INTERVALS_SHOWN, csv=False)
    context = {
        "bill": bill,
        "form": form,
        "summary": summary,
        "total_intervals": len(intervals),
        "total_billed_kwh": sum(billed for _, _, billed in sums.values()),
        "listing": page,
        "rows": [
            {
                "row": row,
                "quality": reading_quality.BY_CODE[row.interval.usage.quality],
                "source": reading_quality.SOURCE_LABELS.get(row.interval.usage.source, row.interval.usage.source),
            }
            for row in page.rows
        ],
    }
    return render(request, "portal/billing/bill_intervals.html", context)


class ReadForm(forms.Form):
    meter = forms.CharField(label="Meter serial", max_length=64)
    purpose = forms.ChoiceField(choices=OnDemandRead.Purpose.choices, initial=OnDemandRead.Purpose.CHECK)
    account = forms.CharField(label="Account number (move-in/out)", max_length=20, required=False)

    def clean_meter(self) -> Meter:
        meter = core.meter_by_serial(self.cleaned_data["meter"].strip())
        if meter is None:
            raise ValidationError("No meter has this serial.")
        if not meter.can_connect:
            raise ValidationError("This meter cannot connect (not active): it would never answer.")
        return meter

    def clean_account(self) -> Account | None:
        number = self.cleaned_data["account"].strip()
        if not number:
            return None
        account = core.account_by_number(number)
        if account is None:
            raise ValidationError("No account has this number.")
        return account

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        meter, account = cleaned.get("meter"), cleaned.get("account")
        if isinstance(meter, Meter) and isinstance(account, Account):
            try:
                on_demand_reads.meter_serves_account(meter=meter, account=account, at=timezone.now())
            except ValidationError as exc:
                self.add_error("account", exc.messages[0])
        return cleaned


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
    for read in records.on_demand_reads_pending(limit=READS_SHOWN):
        if not on_demand_reads.on_demand_read_complete(read=read):
            on_demand_reads.on_demand_read_timeout(read=read)
    return render(request, "portal/billing/_reads_table.html", {"reads": _recent_reads(request)})


@billing_required
@require_GET
def billing_lookup(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()
    context: dict[str, object] = {"q": query}
    if query:
        accounts, meters = records.billing_lookup(query=query)
        context["accounts"] = listing.paged(request, accounts, LOOKUP_RESULTS, param="page", csv=False)
        context["meters"] = listing.paged(request, meters, LOOKUP_RESULTS, param="meters_page", csv=False)
    return render(request, "portal/billing/lookup.html", context)


@billing_required
@require_GET
def billing_account(request: HttpRequest, account_pk: int) -> HttpResponse:
    record = records.account_record(account_pk=account_pk)
    context = {"account": record.account, "bills": record.bills, "meters": record.meters, "reads": record.reads}
    return render(request, "portal/billing/account.html", context)


@billing_required
@require_GET
def billing_meter(request: HttpRequest, meter_pk: int) -> HttpResponse:
    """Everything about one meter: installations, accounts and bills at its premises, reads, edits, anomalies."""
    record = records.meter_record(meter_pk=meter_pk)
    today = local_today()
    days = usage.daily_usage(meter_pk=meter_pk, start=today - dt.timedelta(days=30), end=today + dt.timedelta(days=1))
    context = {
        "meter": record.meter,
        "installations": record.installations,
        "accounts": record.accounts,
        "bills": record.bills,
        "reads": record.reads,
        "edits": record.edits,
        "exceptions": record.exceptions,
        "anomalies": monitoring.meter_anomaly_history(meter_pk=meter_pk, limit=30),
        "days": days,
    }
    return render(request, "portal/billing/meter.html", context)


class ExchangeForm(forms.Form):
    """The same fields as the API's exchange (portal.api.serializers.MeterExchangeSerializer), for a person."""

    new_serial = forms.RegexField(
        regex=r"^[A-Za-z0-9_-]+$",
        max_length=32,
        label="New meter's serial",
        error_messages={"invalid": "Letters, digits, '-' and '_' only."},
    )
    at = listing.iso_datetime_field("Exchanged at")
    old_final_register_kwh = forms.DecimalField(
        label="Old meter's final register (kWh)", max_digits=14, decimal_places=3, min_value=0
    )
    new_initial_register_kwh = forms.DecimalField(
        label="New meter's initial register (kWh)", max_digits=14, decimal_places=3, min_value=0
    )
    work_order = forms.CharField(label="Work order (optional)", max_length=64, required=False)

    def clean_new_serial(self) -> str:
        serial = str(self.cleaned_data["new_serial"])
        if Meter.objects.filter(serial=serial).exists():
            raise ValidationError("A meter with this serial is registered already.")
        return serial


# Where the service's ValidationError keys land on the form (the others go above the fields).
_EXCHANGE_ERROR_FIELDS = {"at": "at", "register": "old_final_register_kwh", "new_meter_serial": "new_serial"}


@billing_required
@require_http_methods(["GET", "POST"])
def billing_meter_exchange(request: HttpRequest, meter_pk: int) -> HttpResponseBase:
    """Exchange a meter on its premise (core.services.meter_exchange, as the CLI, the admin and the API do;
    the service writes the audit row). The new meter's MQTT password is shown here once."""
    meter = records.meter_record(meter_pk=meter_pk).meter
    form = ExchangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if meter.premise is None:
            form.add_error(None, f"Meter {meter.serial} is not installed on a premise.")
        else:
            try:
                record, credentials = core_services.meter_exchange(
                    premise=meter.premise,
                    old_meter=meter,
                    new_meter_serial=data["new_serial"],
                    at=data["at"],
                    old_final_register_kwh=data["old_final_register_kwh"],
                    new_initial_register_kwh=data["new_initial_register_kwh"],
                    work_order=data["work_order"],
                    actor=request.user,
                    via="portal",
                )
            except ValidationError as exc:
                errors = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
                for key, texts in errors.items():
                    for text in texts:
                        form.add_error(_EXCHANGE_ERROR_FIELDS.get(key), text)
            except certificates.CertificateError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Meter {meter.serial} exchanged for {record.new_meter.serial}.")
                context = {"meter": meter, "exchange": record, "credentials": credentials}
                return render(request, "portal/billing/meter_exchanged.html", context)
    return render(request, "portal/billing/meter_exchange.html", {"meter": meter, "form": form})


__all__ = [
    "billing_account",
    "billing_bill",
    "billing_lookup",
    "billing_meter",
    "billing_meter_exchange",
    "billing_reads",
    "billing_reads_live",
    "billing_runs",
    "billing_runs_live",
    "billing_vee_exception",
    "billing_vee_queue",
]


@billing_required
@require_GET
def billing_deliveries(request: HttpRequest) -> HttpResponse:
    """The SFTP delivery log of the outbox's BILLDET files: each version, its attempts and errors."""
    target = SftpTarget.from_settings()
    context = {
        "deliveries": usage.outbox_delivery_log(limit=DELIVERIES_SHOWN),
        "destination": target.describe() if target else None,
        "retry_max_s": settings.BILLING_SFTP_RETRY_MAX_S,
    }
    return render(request, "portal/billing/deliveries.html", context)
