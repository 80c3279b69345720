"""The operator's lists: outage incidents and the meter search. Each pages, filters, and exports as CSV.

Only operators (and staff superusers) open them; anyone else gets a 404 (operator_access).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from mdms.core import selectors as core
from mdms.core.localtime import local_midnight
from mdms.core.models import Feeder, Meter, Region
from monitoring import selectors as monitoring
from monitoring.models import IncidentMeter, OutageIncident
from portal import listing
from portal.views.operator_access import operator_required


class GridFilter(forms.Form):
    """A region and a feeder, the filters every operator list starts with."""

    region = forms.ModelChoiceField(
        queryset=Region.objects.order_by("code"), required=False, empty_label="All regions", widget=listing.QuickSelect
    )
    feeder = forms.ModelChoiceField(
        queryset=Feeder.objects.select_related("region").order_by("code"),
        required=False,
        empty_label="All feeders",
        widget=listing.QuickSelect,
    )


class IncidentFilter(GridFilter):
    started_from = listing.iso_date_field("Started from", required=False)
    started_to = listing.iso_date_field("Started to (included)", required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *OutageIncident.Status.choices], required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("started_from"), data.get("started_to")
        if isinstance(first, dt.date) and isinstance(last, dt.date) and last < first:
            raise forms.ValidationError("The end date is before the start date.")
        return data


@operator_required
@require_GET
def operator_incidents(request: HttpRequest) -> HttpResponseBase:
    """Outage incidents, newest first, a page at a time, filtered by time, region, feeder and status."""
    form = IncidentFilter(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    started_to: dt.date | None = data.get("started_to")
    incidents = monitoring.incidents(
        status=data.get("status") or None,
        region_pk=data["region"].pk if data.get("region") else None,
        feeder_pk=data["feeder"].pk if data.get("feeder") else None,
        started_from=local_midnight(data["started_from"]) if data.get("started_from") else None,
        started_before=local_midnight(started_to + dt.timedelta(days=1)) if started_to else None,
    )
    if listing.wants_csv(request):
        return listing.csv_response(
            name="outages",
            header=[
                "incident",
                "status",
                "region",
                "feeder",
                "started_at",
                "ended_at",
                "duration_class",
                "affected_meters",
                "affected_customers",
            ],
            rows=incidents.iterator(chunk_size=2000),
            row=lambda i: [
                i.pk,
                i.status,
                i.region.code if i.region else None,
                i.feeder.code if i.feeder else None,
                listing.local_iso(i.started_at),
                listing.local_iso(i.ended_at),
                i.duration_class,
                i.affected_meters,
                i.affected_customers,
            ],
        )
    context = {"form": form, "listing": listing.paged(request, incidents)}
    return render(request, "portal/operator/incidents.html", context, status=200 if form.is_valid() else 400)


@operator_required
@require_GET
def operator_incident(request: HttpRequest, incident_pk: int) -> HttpResponseBase:
    """One incident and who is (or was) out in it, a page of meters at a time."""
    incident = get_object_or_404(OutageIncident.objects.select_related("feeder", "region"), pk=incident_pk)
    meters = (
        IncidentMeter.objects.filter(incident=incident).select_related("meter__premise").order_by("out_since", "pk")
    )
    if listing.wants_csv(request):
        return listing.csv_response(
            name=f"outage-{incident.pk}-meters",
            header=["meter", "premise", "out_since", "restored_at", "restored_by", "source"],
            rows=meters.iterator(chunk_size=2000),
            row=lambda m: [
                m.meter.serial,
                m.meter.premise.address if m.meter.premise else None,
                listing.local_iso(m.out_since),
                listing.local_iso(m.restored_at),
                m.restored_by,
                m.source,
            ],
        )
    context = {"incident": incident, "listing": listing.paged(request, meters)}
    return render(request, "portal/operator/incident.html", context)


class MeterFilter(GridFilter):
    q = forms.CharField(
        required=False,
        label="Serial, address, city, customer or feeder",
        widget=forms.TextInput(attrs={"type": "search", "autofocus": True}),
    )
    status = forms.ChoiceField(choices=[("", "Any state"), *Meter.Status.choices], required=False, label="State")


@operator_required
@require_GET
def operator_meters(request: HttpRequest) -> HttpResponseBase:
    """Find a meter or a premise: by serial, address, customer or feeder, filtered by region, feeder and state."""
    form = MeterFilter(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    meters = core.meter_search(
        text=data.get("q") or "",
        region_pk=data["region"].pk if data.get("region") else None,
        feeder_pk=data["feeder"].pk if data.get("feeder") else None,
        status=data.get("status") or None,
    )
    if listing.wants_csv(request):
        return listing.csv_response(
            name="meters",
            header=["serial", "state", "address", "city", "postcode", "feeder", "region", "customers", "installed"],
            rows=meters.iterator(chunk_size=2000),
            row=_meter_row,
        )
    return render(request, "portal/operator/meters.html", {"form": form, "listing": listing.paged(request, meters)})


def _meter_row(meter: Meter) -> list[object]:
    premise = meter.premise
    accounts = getattr(premise, "open_accounts", []) if premise else []
    return [
        meter.serial,
        meter.status,
        premise.address if premise else None,
        premise.city if premise else None,
        premise.postcode if premise else None,
        premise.feeder.code if premise else None,
        premise.feeder.region.code if premise else None,
        "; ".join(a.customer.name for a in accounts),
        meter.install_date.isoformat() if meter.install_date else None,
    ]


__all__ = ["operator_incident", "operator_incidents", "operator_meters"]
