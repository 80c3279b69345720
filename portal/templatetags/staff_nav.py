"""The top bar's links to each role's pages (templates/base.html), so nobody sees a link to a 404."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from mdms.core.roles import Role, user_roles

register = template.Library()


@register.simple_tag(takes_context=True)
def role_links(context: dict[str, Any]) -> list[tuple[str, str]]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None:
        return []
    roles = user_roles(user)
    links: list[tuple[str, str]] = []
    if Role.OPERATOR in roles:
        links += [("Grid", reverse("operator_dashboard")), ("Outages", reverse("operator_incidents")),
                  ("Ingest", reverse("operator_ingest"))]  # fmt: skip
    if Role.BILLING in roles:
        links += [("Billing runs", reverse("billing_runs")), ("Exceptions", reverse("billing_vee_queue")),
                  ("Reads", reverse("billing_reads")), ("Lookup", reverse("billing_lookup")), ("Deliveries", reverse("billing_deliveries"))]  # fmt: skip
    if Role.CONSUMER in roles:
        links += [("Connected apps", reverse("greenbutton:connections"))]  # Green Button Connect grants
    return links
