"""A customer's own pages: the dashboard of a meter, today's power, bills, "Download my data".

Every object is looked up through the user (portal.selectors), so another customer's meter or
bill answers 404 and never confirms that it exists.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing import selectors as usage
from mdms.core.localtime import interval_start_local, local_today
from mdms.core.roles import Role, has_role
from portal import charts, greenbutton, listing
from portal import selectors as portal
from portal.selectors import DASHBOARD_BILLS
from portal.views import consumer_alerts as alerts

# Longest range one download may cover: a year of 15-minute intervals is 35,000 rows.
MAX_DOWNLOAD_DAYS = 400
# How often the dashboard asks for today's power (readings arrive every 15 minutes, or faster).
TODAY_REFRESH_S = 20


class DownloadForm(forms.Form):
    start = listing.iso_date_field("From")
    end = listing.iso_date_field("To (included)")
    format = forms.ChoiceField(
        choices=[("csv", "CSV (spreadsheet)"), ("espi", "Green Button (ESPI XML)")], initial="csv", label="Format"
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if isinstance(start, dt.date) and isinstance(end, dt.date):
            if end < start:
                raise forms.ValidationError("The end date is before the start date.")
            if (end - start).days + 1 > MAX_DOWNLOAD_DAYS:
                raise forms.ValidationError(f"Choose at most {MAX_DOWNLOAD_DAYS} days at a time.")
        return data


def _download_initial(today: dt.date) -> dict[str, object]:
    return {"start": today - dt.timedelta(days=30), "end": today, "format": "csv"}


@login_required
@require_GET
def consumer_dashboard(request: HttpRequest, meter_pk: int) -> HttpResponse:
    meter = portal.meter_for_user(request.user, meter_pk)
    today = local_today()
    accounts = portal.accounts_at(request.user, meter)
    visible = portal.visible_days(request.user, accounts)
    summary = portal.usage_summary(meter, today=today, visible=visible)
    day_start = usage.local_midnight(today)
    day_end = usage.local_midnight(today + dt.timedelta(days=1))
    points = portal.today_power(meter) if today in visible else []
    bills = list(portal.bills_for_user(request.user, accounts)[:DASHBOARD_BILLS])
    solar = meter.has_solar or summary.export_kwh > 0
    billed_now = alerts.projection_active_account(accounts, today)
    projection = (
        alerts.projection_card(meter, billed_now, last_bill=bills[0].total if bills else None)
        if billed_now is not None
        else None
    )
    context = {
        "meter": meter,
        "accounts": accounts,
        "summary": summary,
        "solar": solar,
        "bills": bills,
        "today_points": len(points),
        "today_latest": points[-1] if points else None,
        "refresh_s": TODAY_REFRESH_S,
        "figures": {
            "daily": charts.daily_usage_figure(summary, solar=solar),
            "monthly": charts.monthly_figure(summary.months, solar=solar),
            "heatmap": charts.heatmap_figure(summary),
            "today": charts.today_power_figure(points, day_start=day_start, day_end=day_end),
        },
        "download_form": DownloadForm(initial=_download_initial(today)),
        "show_projection": billed_now is not None,
        "projection": projection,
        "alerts_link": has_role(request.user, Role.CONSUMER),
    }
    return render(request, "portal/consumer/dashboard.html", context)


@login_required
@require_GET
@never_cache
def consumer_today(request: HttpRequest, meter_pk: int) -> JsonResponse:
    """Today's net power of the meter, polled by the dashboard."""
    meter = portal.meter_for_user(request.user, meter_pk)
    visible = portal.visible_days(request.user, portal.accounts_at(request.user, meter))
    points = portal.today_power(meter) if local_today() in visible else []
    return JsonResponse(charts.power_points(points))


def _csv_rows(meter_serial: str, intervals: list[usage.IntervalUsage], interval_s: int) -> Iterator[list[str]]:
    # quality: the interval's code, espi_quality its ESPI QualityOfReading number, source where the
    # value came from (mdms.core.reading_quality; docs/reading-quality.md).
    yield ["meter", "interval_start", "interval_end", "import_kwh", "export_kwh", "quality", "espi_quality", "source"]
    for row in intervals:
        yield [
            meter_serial,
            interval_start_local(row.ts, interval_s).isoformat(),
            row.ts.isoformat(),
            "" if row.import_kwh is None else f"{row.import_kwh:.4f}",
            "" if row.export_kwh is None else f"{row.export_kwh:.4f}",
            row.quality,
            str(row.espi_quality),
            row.source,
        ]


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def consumer_download(request: HttpRequest, meter_pk: int) -> HttpResponseBase:
    """The meter's intervals for a chosen range of local days, as CSV or Green Button XML."""
    meter = portal.meter_for_user(request.user, meter_pk)
    form = DownloadForm(request.GET)
    if not form.is_valid():
        return render(request, "portal/consumer/download.html", {"meter": meter, "form": form}, status=400)
    start: dt.date = form.cleaned_data["start"]
    end: dt.date = form.cleaned_data["end"] + dt.timedelta(days=1)
    visible = portal.visible_days(request.user, portal.accounts_at(request.user, meter))
    intervals = portal.meter_usage_intervals(meter, start, end, visible=visible)
    name = f"{meter.serial}_{start:%Y%m%d}_{end - dt.timedelta(days=1):%Y%m%d}"
    if form.cleaned_data["format"] == "espi":
        body = greenbutton.feed(
            meter=meter, intervals=intervals, zone_name=settings.TIME_ZONE, start=start, end=end, now=timezone.now()
        )
        response = HttpResponse(body, content_type="application/atom+xml")
        response["Content-Disposition"] = f'attachment; filename="{name}.xml"'
        return response
    writer = csv.writer(_Echo())
    streaming = StreamingHttpResponse(
        (writer.writerow(row) for row in _csv_rows(meter.serial, intervals, meter.interval_s)),
        content_type="text/csv; charset=utf-8",
    )
    streaming["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return streaming


@login_required
@require_GET
def bill_detail(request: HttpRequest, bill_pk: int) -> HttpResponse:
    """One bill with its line items, laid out to print (the page's print stylesheet drops the chrome)."""
    bill = portal.bill_for_user(request.user, bill_pk)
    return render(request, "portal/consumer/bill.html", {"bill": bill, "line_items": list(bill.line_items.all())})
