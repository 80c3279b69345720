"""Filters of billing staff's lists (runs, on-demand reads): by state and by days, as the other lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import BillingRun, OnDemandRead
from mdms.core.localtime import local_midnight
from portal import listing


class RunFilter(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any state"), *BillingRun.Status.choices], required=False, label="State")
    run_from = listing.iso_date_field("Run date from", required=False)
    run_to = listing.iso_date_field("Run date to (included)", required=False)


class ReadFilter(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any state"), *OnDemandRead.Status.choices], required=False, label="State")
    purpose = forms.ChoiceField(choices=[("", "Any purpose"), *OnDemandRead.Purpose.choices], required=False)
    requested_from = listing.iso_date_field("Requested from", required=False)
    requested_to = listing.iso_date_field("Requested to (included)", required=False)


def runs(request: HttpRequest) -> tuple[RunFilter, QuerySet[BillingRun]]:
    form = RunFilter(request.GET)
    queryset = BillingRun.objects.select_related("created_by")
    data: dict[str, Any] = form.cleaned_data if form.is_valid() else {}
    if data.get("status"):
        queryset = queryset.filter(status=data["status"])
    if data.get("run_from"):
        queryset = queryset.filter(run_date__gte=data["run_from"])
    if data.get("run_to"):
        queryset = queryset.filter(run_date__lte=data["run_to"])
    return form, queryset


def reads(request: HttpRequest) -> tuple[ReadFilter, QuerySet[OnDemandRead]]:
    form = ReadFilter(request.GET)
    queryset = OnDemandRead.objects.select_related("meter", "account", "requested_by")
    data: dict[str, Any] = form.cleaned_data if form.is_valid() else {}
    if data.get("status"):
        queryset = queryset.filter(status=data["status"])
    if data.get("purpose"):
        queryset = queryset.filter(purpose=data["purpose"])
    if data.get("requested_from"):
        queryset = queryset.filter(requested_at__gte=local_midnight(data["requested_from"]))
    if data.get("requested_to"):
        queryset = queryset.filter(requested_at__lt=local_midnight(data["requested_to"] + dt.timedelta(days=1)))
    return form, queryset
