"""One navigation per role, the same on every page of it, reaching every page; admins reach the admin."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from mdms.core.roles import Role
from mdms.core.testing import make_staff

OPERATOR_PAGES = ["/operator/", "/operator/meters/", "/operator/anomalies/", "/operator/outages/",
                  "/operator/forecast/", "/operator/ingest/", "/operator/notifications/"]  # fmt: skip
BILLING_PAGES = ["/billing/", "/billing/exceptions/", "/billing/reads/", "/billing/lookup/", "/billing/tariffs/",
                 "/billing/deliveries/"]  # fmt: skip


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def nav_links(page: str) -> list[str]:
    bar = re.search(r'<nav aria-label="Pages">(.*?)</nav>', page, re.S)
    assert bar, "no navigation bar"
    return re.findall(r'href="([^"]+)"', bar.group(1))


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "pages"), [("operator", OPERATOR_PAGES), ("billing", BILLING_PAGES)])
def test_every_page_of_a_role_shows_one_bar_that_reaches_all_its_pages(who: str, pages: list[str], mongo: Any) -> None:
    client = client_for(make_staff(f"nav-{who}", Role(who)))
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert nav_links(page) == pages, url
        assert 'class="subnav"' not in page, url  # no second row
        assert f'href="{url}" aria-current="page"' in page, url
    assert "/admin/" not in nav_links(client.get(pages[0]).content.decode())


@pytest.mark.django_db
def test_a_consumers_alerts_page_has_the_same_bar_as_the_dashboard(alice: Any, mongo: Any) -> None:
    client = client_for(alice.user)
    meter = alice.meter.pk
    dashboard = nav_links(client.get(f"/meters/{meter}/").content.decode())
    assert dashboard == ["/", f"/meters/{meter}/", f"/meters/{meter}/#bills", f"/meters/{meter}/#download",
                         f"/meters/{meter}/alerts/", "/connections/"]  # fmt: skip
    assert nav_links(client.get(f"/meters/{meter}/alerts/").content.decode()) == dashboard
    assert nav_links(client.get("/").content.decode()) == dashboard


@pytest.mark.django_db
def test_an_admin_gets_every_staff_page_and_a_link_to_the_admin(django_user_model: Any, mongo: Any) -> None:
    root = django_user_model.objects.create_superuser("root", "root@example.org", "root-pw")
    links = nav_links(client_for(root).get("/").content.decode())
    assert links == [*OPERATOR_PAGES, *BILLING_PAGES, "/admin/"]
    assert client_for(root).get("/admin/").status_code == 200
