"""The one navigation of the portal (templates/base.html): per role, a link to every page it may see.

Nobody sees a link to a 404, and no page adds links of its own, so the bar is the same on every
page of a role. A user with several roles (a superuser) gets one group per role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import reverse

from mdms.core import selectors
from mdms.core.roles import Role, user_roles

register = template.Library()

# A consumer with more meters than this finds the others on the home page.
NAV_METERS = 3


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    current: bool = False


@dataclass(frozen=True)
class NavGroup:
    label: str
    links: list[NavLink]


def _consumer_links(user: Any) -> list[tuple[str, str]]:
    links = [("Home", reverse("home"))]
    meters = list(selectors.meters_for_user(user).order_by("serial")[: NAV_METERS + 1])
    for meter in meters[:NAV_METERS]:
        suffix = f" · {meter.serial}" if len(meters) > 1 else ""
        dashboard = reverse("consumer_dashboard", args=[meter.pk])
        links += [
            (f"Your energy{suffix}", dashboard),
            (f"Bills{suffix}", f"{dashboard}#bills"),
            (f"Download my data{suffix}", f"{dashboard}#download"),
            (f"Alerts{suffix}", reverse("consumer_alerts", args=[meter.pk])),
        ]
    # The apps the consumer let read their data (Green Button Connect), and their revocation.
    links.append(("Connected apps", reverse("greenbutton:connections")))
    return links


def nav_groups_for(user: Any, path: str = "") -> list[NavGroup]:
    """The navigation of this user, with the link of the page at `path` marked current."""
    if user is None or not user.is_authenticated:
        return []
    roles = user_roles(user)
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    if Role.CONSUMER in roles:
        groups.append(("My energy", _consumer_links(user)))
    if Role.OPERATOR in roles:
        groups.append(
            (
                "Operations",
                [
                    ("Grid", reverse("operator_dashboard")),
                    ("Meters", reverse("operator_meters")),
                    ("Anomalies", reverse("operator_anomalies")),
                    ("Outages", reverse("operator_incidents")),
                    ("Forecast", reverse("operator_forecast")),
                    ("Ingest", reverse("operator_ingest")),
                    ("Notifications", reverse("operator_notifications")),
                ],
            )
        )
    if Role.BILLING in roles:
        groups.append(
            (
                "Billing",
                [
                    ("Billing runs", reverse("billing_runs")),
                    ("Exceptions", reverse("billing_vee_queue")),
                    ("Reads", reverse("billing_reads")),
                    ("Lookup", reverse("billing_lookup")),
                    ("Tariffs", reverse("billing_tariffs")),
                    ("Deliveries", reverse("billing_deliveries")),
                ],
            )
        )
    # Role groups carry no admin permissions: staff would find an empty admin. Superusers run it.
    if getattr(user, "is_superuser", False):
        groups.append(("Administration", [("Admin", reverse("admin:index"))]))
    # The current page is the link with the longest URL that the path starts with ("/" only on itself).
    urls = [url for _, links in groups for _, url in links if "#" not in url]
    matches = [url for url in urls if path == url or (url != "/" and path.startswith(url))]
    current = max(matches, key=len) if matches else None
    return [
        NavGroup(label, [NavLink(text, url, current=url == current) for text, url in links]) for label, links in groups
    ]


@register.simple_tag(takes_context=True)
def nav_groups(context: dict[str, Any]) -> list[NavGroup]:
    request = context.get("request")
    if request is None:
        return []
    return nav_groups_for(getattr(request, "user", None), request.path)
