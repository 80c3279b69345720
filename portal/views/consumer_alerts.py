"""A consumer's alerts on a meter, their notifications, and the dashboard's projected-bill card.

Rules and notifications are looked up through the user (alerts.selectors): another
customer's rule, meter or notification answers 404. Alerts are for consumers; staff, who see
every meter, have no alerts page of their own on a customer's meter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from alerts import selectors as alerts
from alerts import services
from alerts.models import MAX_BILL, MAX_DAILY_KWH, MAX_MINUTES, MAX_POWER_KW, AlertRule
from billing.projection import BillProjection, bill_projection
from mdms.core.models import Account, Meter
from mdms.core.roles import Role, has_role
from portal import selectors as portal

NOTIFICATIONS_PAGE = 50

# Kind -> (the unit the threshold is in, its upper bound).
_BOUNDS: dict[str, tuple[str, int]] = {
    AlertRule.Kind.DAILY_KWH: ("kWh a day", MAX_DAILY_KWH),
    AlertRule.Kind.PROJECTED_BILL: ("on the bill", MAX_BILL),
    AlertRule.Kind.POWER_OVER: ("kW", MAX_POWER_KW),
}


class AlertRuleForm(forms.Form):
    kind = forms.ChoiceField(choices=AlertRule.Kind.choices, label="Tell me when")
    threshold = forms.DecimalField(
        required=False,
        max_digits=12,
        decimal_places=2,
        label="Above",
        help_text="kWh a day, the bill's amount, or kW",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01"}),
    )
    minutes = forms.IntegerField(
        required=False,
        label="For at least (minutes)",
        help_text="power alerts only, 1 to 1440",
        widget=forms.NumberInput(attrs={"min": "1", "max": str(MAX_MINUTES)}),
    )

    def __init__(self, *args: Any, user: User, meter: Meter, rule: AlertRule | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user, self.meter, self.rule = user, meter, rule

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        threshold: Decimal | None = data.get("threshold")
        minutes: int | None = data.get("minutes")
        if kind is None:
            return data
        if kind in _BOUNDS:
            unit, upper = _BOUNDS[kind]
            if threshold is None:
                if "threshold" not in self.errors:
                    self.add_error("threshold", f"Enter the level to watch ({unit}).")
            elif threshold <= 0:
                self.add_error("threshold", "Enter a number above zero.")
            elif threshold > upper:
                self.add_error("threshold", f"Enter at most {upper:,} ({unit}); a larger value is surely a typo.")
        else:
            data["threshold"] = None
        if kind == AlertRule.Kind.POWER_OVER:
            if minutes is None:
                if "minutes" not in self.errors:
                    self.add_error("minutes", "Enter how many minutes power must stay above the level (1 to 1440).")
            elif not 1 <= minutes <= MAX_MINUTES:
                self.add_error("minutes", f"Enter from 1 to {MAX_MINUTES} minutes (a day).")
        else:
            data["minutes"] = None
        if not self.errors:
            same = alerts.rules_for_user(self.user, self.meter).filter(
                kind=kind, threshold=data["threshold"], minutes=data["minutes"]
            )
            if self.rule is not None:
                same = same.exclude(pk=self.rule.pk)
            if same.exists():
                raise forms.ValidationError("You already have this alert on this meter.")
        return data


def _consumer_meter(request: HttpRequest, meter_pk: int) -> Meter:
    """The consumer's own meter; a staff user (who sees every meter) or a stranger gets a 404."""
    if not has_role(request.user, Role.CONSUMER):
        raise Http404("No such page.")
    return portal.meter_for_user(request.user, meter_pk)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _currency(user: User | AnonymousUser, meter: Meter) -> str:
    accounts = portal.accounts_at(user, meter)
    return accounts[0].tariff.currency if accounts else ""


@login_required
@require_http_methods(["GET", "POST"])
def consumer_alerts(request: HttpRequest, meter_pk: int) -> HttpResponse:
    """The meter's alerts, and a form to add one."""
    meter = _consumer_meter(request, meter_pk)
    user = _user(request)
    form = AlertRuleForm(request.POST or None, user=user, meter=meter)
    if request.method == "POST" and form.is_valid():
        rule = services.rule_create(user=user, meter=meter, **form.cleaned_data)
        messages.success(request, f"Alert added: {rule.describe(_currency(user, meter))}.")
        return redirect("consumer_alerts", meter_pk=meter.pk)
    currency = _currency(user, meter)
    rules = [(rule, rule.describe(currency)) for rule in alerts.rules_for_user(user, meter)]
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "portal/consumer/alerts.html",
        {"meter": meter, "rules": rules, "form": form, "currency": currency, "max_minutes": MAX_MINUTES},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def consumer_alert_edit(request: HttpRequest, meter_pk: int, rule_pk: int) -> HttpResponse:
    meter = _consumer_meter(request, meter_pk)
    user = _user(request)
    rule = alerts.rule_for_user(user, meter, rule_pk)
    initial = {"kind": rule.kind, "threshold": rule.threshold, "minutes": rule.minutes}
    form = AlertRuleForm(request.POST or None, initial=initial, user=user, meter=meter, rule=rule)
    if request.method == "POST" and form.is_valid():
        services.rule_update(rule=rule, **form.cleaned_data)
        messages.success(request, f"Alert changed: {rule.describe(_currency(user, meter))}.")
        return redirect("consumer_alerts", meter_pk=meter.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "portal/consumer/alert_edit.html", {"meter": meter, "rule": rule, "form": form}, status=status
    )


@login_required
@require_POST
def consumer_alert_delete(request: HttpRequest, meter_pk: int, rule_pk: int) -> HttpResponseBase:
    meter = _consumer_meter(request, meter_pk)
    rule = alerts.rule_for_user(_user(request), meter, rule_pk)
    described = rule.describe(_currency(request.user, meter))
    services.rule_delete(rule=rule)
    messages.success(request, f"Alert deleted: {described}. Its past notifications stay in your list.")
    return redirect("consumer_alerts", meter_pk=meter.pk)


@login_required
@require_POST
def consumer_alert_mute(request: HttpRequest, meter_pk: int, rule_pk: int) -> HttpResponseBase:
    """Mute (muted=1) or unmute (muted=0); unmuting never replays what happened while muted."""
    meter = _consumer_meter(request, meter_pk)
    rule = alerts.rule_for_user(_user(request), meter, rule_pk)
    value = request.POST.get("muted")
    if value not in ("0", "1"):
        return HttpResponse("muted must be 0 or 1", status=400, content_type="text/plain")
    services.rule_set_muted(rule=rule, muted=value == "1")
    messages.success(request, "Alert muted: nothing will be sent." if rule.muted else "Alert on again.")
    return redirect("consumer_alerts", meter_pk=meter.pk)


@login_required
@require_http_methods(["GET"])
def notifications(request: HttpRequest) -> HttpResponse:
    """The user's notifications, newest first, unread marked."""
    page = Paginator(alerts.notifications_for_user(request.user), NOTIFICATIONS_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/consumer/notifications.html",
        {"page": page, "unread": alerts.unread_count(request.user)},
    )


@login_required
@require_POST
def notification_read(request: HttpRequest, notification_pk: int) -> HttpResponseBase:
    notification = alerts.notifications_for_user(request.user).filter(pk=notification_pk).first()
    if notification is None:
        raise Http404("No such notification")
    services.notifications_mark_read(user=_user(request), pks=[notification.pk])
    return redirect(_back(request))


@login_required
@require_POST
def notifications_read_all(request: HttpRequest) -> HttpResponseBase:
    count = services.notifications_mark_read(user=_user(request))
    messages.success(request, f"{count} notification{'s' if count != 1 else ''} marked read.")
    return redirect(_back(request))


def _back(request: HttpRequest) -> str:
    page = request.POST.get("page", "")
    return "notifications" if not page.isdigit() else f"/notifications/?page={page}"


# The dashboard's projected-bill card.


@dataclass(frozen=True)
class ProjectionCard:
    """The projection and where its figures sit on a bar from 0 to `scale` (percent of the bar)."""

    projection: BillProjection
    scale: Decimal
    low_pct: float
    high_pct: float
    point_pct: float
    last_bill: Decimal | None
    last_bill_pct: float | None


def _pct(value: Decimal, scale: Decimal) -> float:
    return round(float(value / scale * 100), 1) if scale else 0.0


def projection_active_account(accounts: list[Account], today: dt.date) -> Account | None:
    """The account billed for the meter now, among `accounts` (already read through the user)."""
    return next((a for a in accounts if a.is_active_on(today)), None)


def projection_card(
    meter: Meter, account: Account, *, last_bill: Decimal | None = None, now: dt.datetime | None = None
) -> ProjectionCard | None:
    """The card of `account`'s current period; None when there is nothing to project from yet."""
    projection = bill_projection(account=account, meter=meter, now=now)
    if projection is None:
        return None
    top = max(projection.high, last_bill or Decimal(0), Decimal("0.01"))
    scale = top * Decimal("1.15")
    return ProjectionCard(
        projection=projection,
        scale=scale,
        low_pct=_pct(projection.low, scale),
        high_pct=_pct(projection.high, scale),
        point_pct=_pct(projection.point, scale),
        last_bill=last_bill,
        last_bill_pct=_pct(last_bill, scale) if last_bill is not None else None,
    )
