"""Operations over the API: who is out, incidents, silent meters, anomaly counts, ingest stats.

These replace the session-only routes /api/v1/monitoring/... and /ingest/stats/ (moved here with
their tests); people need the operator or billing role, machine clients the cis_read scope.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rest_framework.test import APIClient

from mdms.core.timeseries import anomalies as anomaly_store
from mdms.core.timeseries import readings as store
from monitoring import outages
from portal.api.testing import rest_settings, session_client, token_client

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 2, 18, 0, 3, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


def test_operator_sees_who_is_out_and_the_incident(olivia: Any, alice: Any, bob: Any, mongo: Any) -> None:
    events = [{"meter": person.meter.pk, "ts": T0, "type": "power_off"} for person in (alice, bob)]
    outages.outages_apply_events(events=events, touched={})
    client = session_client(olivia)

    out = client.get("/api/v1/out-now/").json()["results"]
    incidents = client.get("/api/v1/incidents/", {"status": "open"}).json()["results"]

    assert {row["serial"] for row in out} == {alice.meter.serial, bob.meter.serial}
    assert {row["incident"] for row in out} == {incidents[0]["id"]}
    assert len(incidents) == 1 and incidents[0]["affected_customers"] == 2


def test_consumers_cannot_read_the_operations_routes(alice: Any, mongo: Any) -> None:
    client = session_client(alice.user)

    for path in ("/api/v1/incidents/", "/api/v1/out-now/", "/api/v1/silent-meters/", "/api/v1/anomalies/counts/"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "permission_denied"


def test_a_meter_silent_for_too_long_is_listed_with_its_intervals(olivia: Any, alice: Any, mongo: Any) -> None:
    last = dt.datetime.now(tz=dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    anomaly_store.last_seen_advance({alice.meter.pk: last})

    rows = session_client(olivia).get("/api/v1/silent-meters/").json()["results"]

    assert [(row["serial"], row["silent_intervals"]) for row in rows] == [(alice.meter.serial, 12)]


def test_anomaly_counts_group_by_feeder_or_meter_and_refuse_another_grouping(
    olivia: Any, alice: Any, mongo: Any
) -> None:
    now = dt.datetime.now(tz=dt.UTC)
    assert alice.meter.premise is not None
    feeder = alice.meter.premise.feeder
    documents = [
        {
            "timestamp": now - dt.timedelta(minutes=minutes),
            "meter_id": alice.meter.pk,
            "feeder": feeder.pk,
            "region": feeder.region_id,
            "rule": "voltage_high",
            "severity": "warning",
            "anomalies": ["voltage_v"],
            "data": {"voltage_v": 262.0},
        }
        for minutes in (15, 30)
    ]
    anomaly_store.insert_anomalies(documents)
    client = session_client(olivia)

    by_feeder = client.get("/api/v1/anomalies/counts/").json()["results"]
    by_meter = client.get("/api/v1/anomalies/counts/", {"by": "meter"}).json()["results"]
    refused = client.get("/api/v1/anomalies/counts/", {"by": "postcode"})

    assert by_feeder == [{"group": feeder.pk, "severity": "warning", "count": 2}]
    assert by_meter == [{"group": alice.meter.pk, "severity": "warning", "count": 2}]
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "by"
    active = client.get("/api/v1/anomalies/", {"meter": alice.meter.serial}).json()
    assert active["count"] == 2
    assert client.get("/api/v1/anomalies/", {"meter": "NO-SUCH-METER"}).json()["count"] == 0


def test_operator_sees_counters_and_recent_dead_letters(olivia: Any, mongo: Any) -> None:
    store.insert_dead_letters(
        [
            store.dead_letter_document(
                topic="meters/X/readings",
                payload=b"\xff",
                received_at=dt.datetime.now(tz=dt.UTC),
                reason_code="bad_encoding",
                reason="payload is not UTF-8 text",
            )
        ]
    )
    body = session_client(olivia).get("/api/v1/ingest/stats/").json()
    assert body["dead_letters_last_24h_by_reason"] == {"bad_encoding": 1}
    assert body["recent_dead_letters"][0]["payload"] == "<1 bytes>"
    assert {"received", "stored", "dead_lettered", "duplicates", "last_lag_s"} <= body["counters"].keys()


def test_billing_staff_and_a_read_token_may_read_ingest_stats_but_a_consumer_may_not(
    alice: Any, bill: Any, mongo: Any
) -> None:
    assert session_client(bill).get("/api/v1/ingest/stats/").status_code == 200
    assert token_client("cis_read").get("/api/v1/ingest/stats/").status_code == 200
    assert session_client(alice.user).get("/api/v1/ingest/stats/").status_code == 403
    assert token_client("billing").get("/api/v1/ingest/stats/").status_code == 403
    assert APIClient().get("/api/v1/ingest/stats/").status_code == 401
