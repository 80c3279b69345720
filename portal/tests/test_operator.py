"""The operator's pages: who may open them, the grid sums, the outage on the map and in the list."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from mdms.core.testing import Person
from monitoring.outages import outages_apply_events
from portal.tests.usage_data import store_days
from portal.views import operator_data

OPERATOR_PAGES = ["/operator/", "/operator/anomalies/", "/operator/outages/", "/operator/ingest/"]
BILLING_PAGES = ["/billing/", "/billing/exceptions/", "/billing/reads/", "/billing/lookup/"]


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("url", OPERATOR_PAGES + BILLING_PAGES)
def test_a_consumer_gets_not_found_on_every_staff_page(url: str, alice: Person, mongo: Any) -> None:
    assert client_for(alice.user).get(url).status_code == 404


@pytest.mark.django_db
def test_operators_do_not_see_billing_pages_and_billing_staff_not_operator_pages(
    olivia: Any, bill: Any, mongo: Any
) -> None:
    operator, billing = client_for(olivia), client_for(bill)
    for url in OPERATOR_PAGES:
        assert operator.get(url).status_code == 200, url
        assert billing.get(url).status_code == 404, url
    for url in BILLING_PAGES:
        assert billing.get(url).status_code == 200, url
        assert operator.get(url).status_code == 404, url


@pytest.mark.django_db
def test_a_superuser_sees_both_and_the_nav_links_follow_the_roles(
    django_user_model: Any, olivia: Any, mongo: Any
) -> None:
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "root-pw")
    page = client_for(admin).get("/").content.decode()
    assert 'href="/operator/"' in page and 'href="/billing/"' in page
    for url in OPERATOR_PAGES + BILLING_PAGES:
        assert client_for(admin).get(url).status_code == 200, url
    operator_home = client_for(olivia).get("/").content.decode()
    assert 'href="/operator/"' in operator_home and 'href="/billing/"' not in operator_home


@pytest.mark.django_db
def test_grid_load_sums_the_feeders_meters_from_the_rollups(alice: Person, bob: Person, mongo: Any) -> None:
    today = timezone.localdate()
    store_days(alice.meter, today - dt.timedelta(days=2), today, import_kwh=0.25)  # 1 kWh per hour
    store_days(bob.meter, today - dt.timedelta(days=2), today, import_kwh=0.5)  # 2 kWh per hour

    load = operator_data.grid_load(today=today)

    feeders = {f.feeder.pk: f for f in load.feeders}
    for person, kw in ((alice, 1.0), (bob, 2.0)):
        assert feeders[person.meter.premise.feeder_id].peak_kw == pytest.approx(kw, abs=1e-6) or (
            alice.meter.premise.feeder_id == bob.meter.premise.feeder_id
        )
    total_by_day = {day: kwh for days in load.region_days.values() for day, kwh in days}
    assert total_by_day[today - dt.timedelta(days=1)] == pytest.approx(72.0, abs=2.0)  # 24 h x 3 kW
    hour_of_day = [v for values in load.region_hour_of_day.values() for v in values if v is not None]
    assert max(hour_of_day) == pytest.approx(3.0, abs=1e-6)


@pytest.mark.django_db
def test_an_outage_from_last_gasps_shows_on_the_map_and_in_the_incident_list(
    olivia: Any, alice: Person, bob: Person, mongo: Any
) -> None:
    now = timezone.now()
    outages_apply_events(events=[{"meter": alice.meter.pk, "ts": now, "type": "power_off"}], touched={})

    points = {p.serials[0]: p.state for p in operator_data.premise_states()}
    assert points[alice.meter.serial] == "out"
    assert points[bob.meter.serial] != "out"
    response = client_for(olivia).get("/operator/")
    assert response.context["state_counts"]["out"] == 1
    assert len(response.context["open_incidents"]) == 1
    out_trace = next(t for t in response.context["figures"]["map"]["data"] if t["meta"] == "out")
    assert len(out_trace["x"]) == 1
    incident = response.context["open_incidents"][0]
    listing = client_for(olivia).get("/operator/outages/").content.decode()
    assert f'href="/operator/outages/{incident.pk}/"' in listing
    page = client_for(olivia).get(f"/operator/outages/{incident.pk}/").content.decode()
    assert alice.meter.serial in page and "still out" in page
