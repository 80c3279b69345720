"""The operator's pages: the grid dashboard with the premise map, anomalies, outages, ingest health.

Only operators (and staff superusers) open them; anyone else gets a 404 (operator_access).
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from forecast import selectors as forecast
from ingest.datahub import selectors as datahub
from lake import selectors as lake_selectors
from mdms.core.localtime import local_day, local_midnight, local_today
from mdms.core.models import Meter
from mdms.core.timeseries import anomalies as anomaly_store
from mdms.core.timeseries import readings as stored
from monitoring import selectors as monitoring
from monitoring.detection import ALERTING, SEVERITIES
from monitoring.models import IncidentMeter, OutageIncident
from portal import listing
from portal.selectors import DASHBOARD_MONTHS
from portal.views import operator_charts as charts
from portal.views import operator_data as data
from portal.views.operator_access import operator_required
from portal.views.operator_lists import GridFilter

# Without a chosen range the drill-down shows yesterday and today (up to 192 readings at 15 minutes).
DRILLDOWN_DEFAULT_DAYS = dt.timedelta(days=1)
INCIDENTS_SHOWN = 50  # open incidents on the dashboard; the outages page pages through all
INGEST_REFRESH_S = 5


@operator_required
@require_GET
def operator_dashboard(request: HttpRequest) -> HttpResponse:
    today = local_today()
    grid = data.grid_view(today=today)
    load = grid.load
    # Read once: the map colours premises from them and the page lists and counts them.
    silent = monitoring.silent_meters()
    anomaly_counts = monitoring.anomaly_counts(group_by="meter_id")
    premises = data.premise_map(silent_rows=silent, anomaly_counts=anomaly_counts)
    regions = grid.regions
    open_incidents = list(monitoring.incidents(status=OutageIncident.Status.OPEN)[:INCIDENTS_SHOWN])
    context = {
        "load": load,
        "region_rows": [
            {
                "region": region,
                "peak": load.region_peaks.get(region.pk, (0.0, None)),
                "today_kwh": sum(f.today_kwh for f in load.feeders if f.feeder.region_id == region.pk),
                "now_kw": sum(f.now_kw or 0.0 for f in load.feeders if f.feeder.region_id == region.pk),
                **regions.get(region.pk, {"feeders": 0, "meters": 0}),
            }
            for region in load.regions
        ],
        "state_counts": premises.counts,
        "map_cell_deg": premises.cell_deg,
        "open_incidents": open_incidents,
        "silent": silent[:20],
        # Grouped by meter or by region, the counts of a severity add up to the same total.
        "anomaly_total": sum(row["count"] for row in anomaly_counts if row["severity"] in ALERTING),
        "figures": {
            "map": charts.map_figure(premises.points, premises.cells, premises.counts),
            "hourly": charts.region_hourly_figure(load),
            "daily": charts.region_daily_figure(load),
            "utilisation": charts.utilisation_figure(load),
        },
        "hourly_days": data.HOURLY_DAYS,
        "daily_days": data.DAILY_DAYS,
        "capacity_warnings": list(forecast.open_capacity_warnings()[:INCIDENTS_SHOWN]),
    }
    return render(request, "portal/operator/dashboard.html", context)


class AnomalyFilter(GridFilter):
    meter = forms.CharField(required=False, label="Meter serial")
    severity = forms.ChoiceField(
        choices=[("", "Warning and critical"), *((s, s.capitalize()) for s in SEVERITIES)], required=False
    )
    since = listing.iso_date_field("From", required=False)
    until = listing.iso_date_field("To (included)", required=False)


class _AnomalyRows:
    """The anomalies of a filter as the paginator reads a list: a count, and one page by skip and limit."""

    def __init__(self, filters: dict[str, Any]) -> None:
        self.filters = filters

    def count(self) -> int:
        return anomaly_store.count_anomalies(**self.filters)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        start = window.start or 0
        stop = window.stop if window.stop is not None else start + listing.PAGE_SIZE
        return anomaly_store.anomalies(**self.filters, skip=start, limit=stop - start)


@operator_required
@require_GET
def operator_anomalies(request: HttpRequest) -> HttpResponseBase:
    """Anomalies (the last day unless dates are chosen), filtered by region, feeder, meter and severity."""
    form = AnomalyFilter(request.GET or None)
    filters: dict[str, Any] = {"min_severity": list(ALERTING), "since": timezone.now() - monitoring.ACTIVE_WINDOW}
    unknown_meter = False
    if form.is_valid():
        data = form.cleaned_data
        if data["region"]:
            filters["region_pk"] = data["region"].pk
        if data["feeder"]:
            filters["feeder_pk"] = data["feeder"].pk
        if data["meter"]:
            meter = Meter.objects.filter(serial=data["meter"].strip()).first()
            unknown_meter = meter is None
            filters["meter_pk"] = meter.pk if meter else -1
        if data["severity"]:
            filters["min_severity"] = [data["severity"]]
        if data["since"]:
            filters["since"] = local_midnight(data["since"])
        if data["until"]:
            filters["until"] = local_midnight(data["until"] + dt.timedelta(days=1))
            if not data["since"]:
                filters["since"] = None
    rows = _AnomalyRows(filters)
    if listing.wants_csv(request):
        everything = anomaly_store.anomalies(**filters, limit=listing.MAX_EXPORT_ROWS)
        serials = dict(Meter.objects.filter(pk__in={a["meter_id"] for a in everything}).values_list("pk", "serial"))
        return listing.csv_response(
            name="anomalies",
            header=["timestamp", "meter", "feeder", "region", "rule", "severity", "fields"],
            rows=everything,
            row=lambda a: [listing.local_iso(a["timestamp"]), serials.get(a["meter_id"], a["meter_id"]),
                           a.get("feeder"), a.get("region"), a.get("rule"), a.get("severity"),
                           ";".join(a.get("anomalies") or [])],
        )  # fmt: skip
    page = listing.paged(request, rows)
    found = page.rows
    meters = Meter.objects.filter(pk__in={row["meter_id"] for row in found}).select_related("premise__feeder__region")
    by_pk = {m.pk: m for m in meters}
    context = {
        "form": form,
        "listing": page,
        "rows": [{**row, "meter": by_pk.get(row["meter_id"])} for row in found],
        "unknown_meter": unknown_meter,
        "chosen_days": form.is_valid() and bool(form.cleaned_data["since"] or form.cleaned_data["until"]),
    }
    return render(request, "portal/operator/anomalies.html", context)


def _months_before(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` months earlier (the month's last day where it has fewer)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class DrilldownRange(forms.Form):
    """The local days a meter's drill-down shows: at most the portal's six months (DASHBOARD_MONTHS)."""

    start = listing.iso_date_field("From", required=False)
    end = listing.iso_date_field("To (included)", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = local_today()
        end: dt.date = data.get("end") or today
        start: dt.date = data.get("start") or end - DRILLDOWN_DEFAULT_DAYS
        if end < start:
            raise forms.ValidationError("The end date is before the start date.")
        if start < _months_before(end, DASHBOARD_MONTHS):
            raise forms.ValidationError(f"Choose at most {DASHBOARD_MONTHS} months at a time.")
        data["start"], data["end"] = start, end
        return data


@operator_required
@require_GET
def operator_meter(request: HttpRequest, meter_pk: int) -> HttpResponse:
    """One meter's readings over a chosen range of local days, its anomalies marked, and its outage history."""
    meter = get_object_or_404(Meter.objects.select_related("premise__feeder__region"), pk=meter_pk)
    form = DrilldownRange(request.GET)
    valid = form.is_valid()
    first: dt.date = form.cleaned_data["start"] if valid else local_today() - DRILLDOWN_DEFAULT_DAYS
    last: dt.date = form.cleaned_data["end"] if valid else local_today()
    start, end = local_midnight(first), local_midnight(last + dt.timedelta(days=1))
    # Readings are stamped with their interval's end: the days' intervals end in (start, end].
    # (A millisecond: MongoDB keeps times to the millisecond, a microsecond would round away.)
    tick = dt.timedelta(milliseconds=1)
    readings = stored.readings_for_meter(meter.pk, start + tick, end + tick) if valid else []
    found = monitoring.meter_anomaly_history(meter_pk=meter.pk, start=start, end=end, limit=500) if valid else []
    outages = IncidentMeter.objects.filter(meter=meter).select_related("incident").order_by("-out_since")[:20]
    newest = stored.newest_ts_by_meter([meter.pk]).get(meter.pk) if not readings else None
    context = {
        "meter": meter,
        "form": form,
        "first": first,
        "last": last,
        "anomalies": found,
        "outages": outages,
        "reading_count": len(readings),
        "newest": newest,
        # The day the newest interval started in (its ts is its end: midnight belongs to the day before).
        "newest_day": local_day(newest - dt.timedelta(seconds=meter.interval_s)) if newest else None,
        "figure": charts.meter_drilldown_figure(readings, found, start=start, end=end) if readings else None,
    }
    return render(request, "portal/operator/meter.html", context, status=200 if valid else 400)


@operator_required
@require_GET
def operator_ingest(request: HttpRequest) -> HttpResponse:
    context = {"health": data.ingest_health(), "refresh_s": INGEST_REFRESH_S, "silent": monitoring.silent_meters()}
    # Data hub pulls (ingest.datahub): the last 24 hours' outcomes and latest errors.
    context["datahub"] = datahub.pull_summary(since=timezone.now() - dt.timedelta(hours=24))
    # The data lake (lake): last exported day, verified and tiered days, errors.
    context["lake"] = lake_selectors.lake_status()
    return render(request, "portal/operator/ingest.html", context)


@operator_required
@require_GET
@never_cache
def operator_ingest_live(request: HttpRequest) -> HttpResponse:
    """The ingest figures alone, fetched by the page every few seconds."""
    return render(request, "portal/operator/_ingest_figures.html", {"health": data.ingest_health()})
