"""The consumer's side of Green Button Connect: the consent page and the list of connected apps.

The consent page is django-oauth-toolkit's authorization endpoint (the authorization-code flow,
PKCE required), shown in the portal's style: it names the application, the meters, the ESPI
function blocks, the interval length, and lets the consumer choose the meters and the days shared.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import get_application_model
from oauth2_provider.views import AuthorizationView

from greenbutton import selectors, services
from greenbutton.scopes import OFFERED_BY_TEXT, EspiScope
from mdms.core.localtime import local_today
from mdms.core.models import Meter


def _requested_scope(text: str) -> EspiScope | None:
    for part in text.split():
        if part in OFFERED_BY_TEXT:
            return OFFERED_BY_TEXT[part]
    return None


class _MeterChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Meter) -> str:  # type: ignore[override]
        return f"Meter {obj.serial}" + (f", {obj.premise.address}" if obj.premise else "")


class ConsentForm(AllowForm):
    meters = _MeterChoice(
        queryset=Meter.objects.none(), widget=forms.CheckboxSelectMultiple, required=False, label="Meters to share"
    )
    start_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Share data from"
    )
    end_date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        label="Until (included; leave empty to keep sharing new data)",
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        meters = self.fields["meters"]
        assert isinstance(meters, forms.ModelMultipleChoiceField)
        meters.queryset = selectors.consumer_meters(user)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("allow"):
            return data  # refusing needs no choices
        scope = _requested_scope(data.get("scope", ""))
        if scope is None:
            raise ValidationError("The application asked for data this utility does not offer.")
        if not data.get("meters"):
            self.add_error("meters", "Choose at least one meter to share.")
        start, end = data.get("start_date"), data.get("end_date")
        earliest = scope.earliest_day(local_today())
        if start is None:
            self.add_error("start_date", "Choose the first day to share.")
        elif start < earliest:
            self.add_error(
                "start_date", f"The application asked for data from {earliest} on; choose that day or later."
            )
        if start is not None and end is not None and end < start:
            self.add_error("end_date", "The last day is before the first.")
        return data


class ConsentView(AuthorizationView):
    """GET shows the consent page; POST records the subscription, then lets the toolkit issue the code."""

    template_name = "greenbutton/consent.html"
    form_class = ConsentForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_initial(self) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_initial()
        scope = _requested_scope(initial.get("scope") or "")
        meters = list(selectors.consumer_meters(self.request.user))
        tenancies = [t for t in (selectors.tenancy(self.request.user, m) for m in meters) if t is not None]
        earliest = scope.earliest_day(local_today()) if scope else local_today()
        moved_in = min((t[0] for t in tenancies), default=earliest)
        return {**initial, "meters": meters, "start_date": max(earliest, moved_in), "end_date": None}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        form = context.get("form")
        if "application" not in context and form is not None:
            # A re-shown form (invalid POST): the toolkit's GET-only context, from the form's hidden fields.
            client_id = form.data.get("client_id") or form.initial.get("client_id")
            context["application"] = get_application_model().objects.filter(client_id=client_id).first()
        scope_text = form.data.get("scope") if form is not None and form.is_bound else None
        scope_text = scope_text or " ".join(context.get("scopes") or [])
        context["espi_scope"] = _requested_scope(scope_text)
        context["meters"] = list(selectors.consumer_meters(self.request.user))
        return context

    def form_valid(self, form: forms.Form) -> HttpResponse:
        if form.cleaned_data.get("allow"):
            application = get_application_model().objects.get(client_id=form.cleaned_data["client_id"])
            scope = _requested_scope(form.cleaned_data["scope"])
            assert scope is not None  # ConsentForm.clean
            try:
                services.subscription_grant(
                    user=self.request.user,
                    application=application,
                    scope=scope.text,
                    meters=list(form.cleaned_data["meters"]),
                    start_date=form.cleaned_data["start_date"],
                    end_date=form.cleaned_data["end_date"],
                )
            except ValidationError as error:
                form.add_error(None, error)
                return self.form_invalid(form)
        response: HttpResponse = super().form_valid(form)
        return response


def _consumer(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required
    return request.user


@login_required
@require_GET
def connections(request: HttpRequest) -> HttpResponse:
    """The applications the consumer lets read their data, with what each may read, and a revoke button."""
    rows = []
    for subscription in selectors.subscriptions_for_user(_consumer(request)):
        scope = subscription.espi_scope
        rows.append({"subscription": subscription, "scope": scope, "meters": list(subscription.meters.all())})
    return render(request, "greenbutton/connections.html", {"rows": rows, "today": local_today()})


@login_required
@require_POST
def connection_revoke(request: HttpRequest, subscription_pk: int) -> HttpResponseBase:
    subscription = services.subscription_revoke(user=_consumer(request), subscription_pk=subscription_pk)
    messages.success(request, f"{subscription.application.name} can no longer read your data.")
    return redirect("greenbutton:connections")
