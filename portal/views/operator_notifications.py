"""Operators: the volume of consumer notifications, by day and kind, and whether their e-mails get out."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from alerts.models import Notification
from alerts.selectors import notification_volume
from mdms.core.localtime import local_today
from portal.views.operator_access import operator_required

# Column heads of the by-day table, short enough for a narrow column.
SHORT_KINDS = {"daily_kwh": "Daily use", "projected_bill": "Bill", "power_over": "Power", "no_data": "No data"}
# The window of the volume table: two weeks shows a weekly rhythm and a jump against it.
VOLUME_DAYS = 14


@operator_required
@require_GET
def operator_notifications(request: HttpRequest) -> HttpResponse:
    volume = notification_volume(today=local_today(), days=VOLUME_DAYS)
    peak = max((row.total for row in volume.days), default=0)
    states = [(label, volume.emails.get(value, 0), value) for value, label in Notification.EmailState.choices]
    return render(
        request,
        "portal/operator/notifications.html",
        {
            "volume": volume,
            "days": VOLUME_DAYS,
            "rows": [(row, round(row.total / peak * 100) if peak else 0) for row in volume.days],
            "kind_totals": list(zip(volume.kinds, volume.total_by_kind, volume.rules_by_kind, strict=True)),
            "email_states": states,
            "short_kinds": [SHORT_KINDS.get(value, label) for value, label in volume.kinds],
        },
    )
