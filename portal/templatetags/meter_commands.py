"""`{% meter_commands meter %}`: a meter's commands and the form to send one, on the operator's and
the billing staff's meter pages (both roles may send; cutting supply needs a reason)."""

from __future__ import annotations

from typing import Any

from django import template

from commands.kinds import RELAY_KINDS, Kind
from commands.selectors import commands_for_meter
from mdms.core.models import Meter

register = template.Library()


@register.inclusion_tag("portal/_meter_commands.html", takes_context=True)
def meter_commands(context: dict[str, Any], meter: Meter) -> dict[str, Any]:
    request = context["request"]
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "meter": meter,
        "commands": commands_for_meter(meter_pk=meter.pk),
        "kinds": [(kind.value, kind.value.replace("_", " "), kind in RELAY_KINDS) for kind in Kind],
        "back": request.get_full_path(),
    }
