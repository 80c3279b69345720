"""Billing staff's tariffs: the list, and each tariff's price versions with a form to add the next one.

Prices change by version (mdms.core.models.TariffVersion), from a future day on; a bill whose period
spans a change is prorated by the billing run. Only billing staff (and staff superusers) open these.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from mdms.core import services
from mdms.core.localtime import local_today
from mdms.core.models import Tariff, TariffVersion
from portal import listing
from portal.views.operator_access import billing_required


def _tariffs() -> Any:
    return Tariff.objects.annotate(
        open_accounts=Count("accounts", filter=Q(accounts__move_out_date__isnull=True), distinct=True)
    ).prefetch_related(Prefetch("versions", queryset=TariffVersion.objects.order_by("effective_from")), "tou_periods")


def in_effect(tariff: Tariff, day: Any) -> TariffVersion | None:
    current = None
    for version in tariff.versions.all():  # prefetched, oldest first
        if version.effective_from <= day:
            current = version
    return current


@billing_required
@require_GET
def billing_tariffs(request: HttpRequest) -> HttpResponseBase:
    today = local_today()
    tariffs = _tariffs().order_by("code")
    if listing.wants_csv(request):
        return listing.csv_response(
            name="tariffs",
            header=["code", "name", "currency", "time_of_use", "versions", "prices_from", "fixed_monthly_charge",
                    "energy_rate_per_kwh", "open_accounts"],
            rows=list(tariffs),
            row=lambda t: _csv_row(t, today),
        )  # fmt: skip
    page = listing.paged(request, tariffs)
    rows = [{"tariff": t, "current": in_effect(t, today), "next": _next(t, today)} for t in page.rows]
    return render(request, "portal/billing/tariffs.html", {"listing": page, "rows": rows, "today": today})


def _next(tariff: Tariff, today: Any) -> TariffVersion | None:
    return next((v for v in tariff.versions.all() if v.effective_from > today), None)


def _csv_row(tariff: Tariff, today: Any) -> list[object]:
    current = in_effect(tariff, today)
    source: Any = current or tariff
    return [tariff.code, tariff.name, tariff.currency, tariff.is_time_of_use, tariff.versions.count(),
            current.effective_from if current else None, source.fixed_monthly_charge, source.energy_rate_per_kwh,
            getattr(tariff, "open_accounts", None)]  # fmt: skip


class VersionForm(forms.Form):
    effective_from = listing.iso_date_field("Prices apply from")
    fixed_monthly_charge = forms.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0"))
    energy_rate_per_kwh = forms.DecimalField(
        max_digits=8, decimal_places=5, min_value=Decimal("0"), required=False, label="Energy rate per kWh"
    )
    demand_charge_per_kw = forms.DecimalField(
        max_digits=8, decimal_places=4, min_value=Decimal("0"), initial=Decimal("0"), label="Demand charge per kW"
    )
    export_credit_per_kwh = forms.DecimalField(
        max_digits=8, decimal_places=5, min_value=Decimal("0"), initial=Decimal("0"), label="Export credit per kWh"
    )
    note = forms.CharField(max_length=200, required=False, label="Why (shown in the history)")

    def __init__(self, *args: Any, tariff: Tariff, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tariff = tariff
        if tariff.is_time_of_use:
            del self.fields["energy_rate_per_kwh"]
            for period in tariff.tou_periods.all():
                self.fields[f"rate:{period.day_type}:{period.name}"] = forms.DecimalField(
                    max_digits=8, decimal_places=5, min_value=Decimal("0"), initial=period.rate_per_kwh,
                    label=f"{period.get_day_type_display()} {period.name} per kWh",
                )  # fmt: skip
        else:
            self.fields["energy_rate_per_kwh"].required = True

    def period_rates(self) -> dict[str, Decimal]:
        return {name[5:]: value for name, value in self.cleaned_data.items() if name.startswith("rate:")}


@billing_required
@require_http_methods(["GET", "POST"])
def billing_tariff(request: HttpRequest, tariff_pk: int) -> HttpResponseBase:
    tariff = get_object_or_404(_tariffs(), pk=tariff_pk)
    today = local_today()
    source: Any = in_effect(tariff, today) or tariff
    initial = {
        "fixed_monthly_charge": source.fixed_monthly_charge,
        "energy_rate_per_kwh": source.energy_rate_per_kwh,
        "demand_charge_per_kw": source.demand_charge_per_kw,
        "export_credit_per_kwh": source.export_credit_per_kwh,
    }
    form = VersionForm(request.POST or None, tariff=tariff, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                version = services.tariff_version_create(
                    tariff=tariff,
                    effective_from=data["effective_from"],
                    fixed_monthly_charge=data["fixed_monthly_charge"],
                    energy_rate_per_kwh=data.get("energy_rate_per_kwh"),
                    demand_charge_per_kw=data["demand_charge_per_kw"],
                    export_credit_per_kwh=data["export_credit_per_kwh"],
                    period_rates=form.period_rates(),
                    note=data["note"],
                    created_by=request.user,  # type: ignore[arg-type]
                )
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, problems)
            else:
                messages.success(request, f"New prices of {tariff.code} from {version.effective_from:%Y-%m-%d}.")
                return redirect("billing_tariff", tariff_pk=tariff.pk)
        status = 400
    context = {
        "tariff": tariff,
        "versions": list(tariff.versions.all()),
        "current": in_effect(tariff, today),
        "today": today,
        "form": form,
    }
    return render(request, "portal/billing/tariff.html", context, status=status)
