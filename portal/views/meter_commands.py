"""Staff send commands to a meter from its page (operators' drill-down, billing staff's history)."""

from __future__ import annotations

import functools
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from commands.services import command_request
from mdms.core.models import Meter
from mdms.core.roles import Role, user_roles
from portal.views.operator_access import View


def staff_required(view: View) -> View:
    """Operators and billing staff; anyone else gets a 404, as for every staff page."""

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not user_roles(request.user) & {Role.OPERATOR, Role.BILLING}:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper


@staff_required
@require_POST
def meter_command_send(request: HttpRequest, meter_pk: int) -> HttpResponseBase:
    meter = get_object_or_404(Meter, pk=meter_pk)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    try:
        priority = int(request.POST.get("priority", "5"))
    except ValueError:
        priority = 0  # refused below with the service's message
    try:
        command, _ = command_request(
            meter=meter,
            kind=request.POST.get("kind", ""),
            priority=priority,
            reason=request.POST.get("reason", ""),
            requested_by=request.user,  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        problems = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        for field, texts in problems.items():
            messages.error(request, f"{field + ': ' if field else ''}{'; '.join(texts)}")
    else:
        messages.success(request, f"{command.get_kind_display().capitalize()} queued for meter {meter.serial}.")
    return redirect(f"{back}#commands")
