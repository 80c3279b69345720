from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from monitoring import outages

pytestmark = pytest.mark.urls("monitoring.tests.urls")
T0 = dt.datetime(2026, 11, 2, 18, 0, 3, tzinfo=dt.UTC)


def test_operator_sees_who_is_out_and_the_incident(olivia: Any, alice: Any, bob: Any, mongo: Any) -> None:
    events = [{"meter": person.meter.pk, "ts": T0, "type": "power_off"} for person in (alice, bob)]
    outages.outages_apply_events(events=events, touched={})
    client = Client()
    client.force_login(olivia)

    out = client.get("/api/v1/monitoring/out-now/").json()["results"]
    incidents = client.get("/api/v1/monitoring/incidents/?status=open").json()["results"]

    assert {row["serial"] for row in out} == {alice.meter.serial, bob.meter.serial}
    assert len(incidents) == 1 and incidents[0]["affected_customers"] == 2


def test_consumers_cannot_read_the_monitoring_api(alice: Any) -> None:
    client = Client()
    client.force_login(alice.user)

    assert client.get("/api/v1/monitoring/incidents/").status_code == 403
