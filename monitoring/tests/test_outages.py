from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from mdms.celery import app
from mdms.core import stored_batches
from mdms.core.testing import make_consumer, make_grid
from monitoring import outages, selectors
from monitoring.models import OutageIncident, WebhookDelivery
from monitoring.tests import helpers

T0 = dt.datetime(2026, 11, 2, 18, 0, 3, tzinfo=dt.UTC)


@pytest.fixture
def group() -> Iterator[str]:
    name = helpers.fresh_group()
    yield name
    helpers.drop_group(name)


@pytest.fixture
def feeder_people(db: None, mongo: Any) -> dict[str, Any]:
    """Three consumers on feeder north-f1, and dave on another feeder."""
    north = make_grid("north")
    people = {name: make_consumer(name, feeder=north) for name in ("alice", "bob", "carol")}
    people["dave"] = make_consumer("dave", feeder=make_grid("south"))
    return people


def _hand_on_events(events: list[tuple[int, dt.datetime, str]]) -> None:
    helpers.store_events(events)
    stored_batches.publish_stored("events", [{"meter": pk, "ts": ts} for pk, ts, _kind in events])


def _hand_on_reading(meter_pk: int, ts: dt.datetime) -> None:
    helpers.store(list(helpers.household(meter_pk, ts - helpers.STEP, ts)))
    stored_batches.publish(kind="readings", meter_pks=[meter_pk], min_ts=ts, max_ts=ts, count=1)


def test_feeder_wide_outage_is_one_incident_with_its_customers_and_closes_on_restore(
    feeder_people: dict[str, Any], group: str
) -> None:
    alice, bob, carol = (feeder_people[name].meter.pk for name in ("alice", "bob", "carol"))
    _hand_on_events(
        [
            (alice, T0, "power_off"),
            (bob, T0 + dt.timedelta(seconds=2), "power_off"),
            (carol, T0 + dt.timedelta(seconds=4), "power_off"),
        ]
    )

    outages.outages_process_pending(consumer="test", group=group)

    incident = OutageIncident.objects.get()
    assert incident.status == OutageIncident.Status.OPEN
    assert incident.feeder is not None and incident.feeder.code == "north-f1"
    assert incident.started_at == T0
    assert (incident.affected_meters, incident.affected_customers) == (3, 3)
    assert {row.meter.serial for row in selectors.meters_out_now()} == {
        feeder_people[name].meter.serial for name in ("alice", "bob", "carol")
    }

    # Two come back by power_on, the third shows it is back by sending a reading.
    _hand_on_events(
        [(alice, T0 + dt.timedelta(minutes=40), "power_on"), (bob, T0 + dt.timedelta(minutes=40), "power_on")]
    )
    outages.outages_process_pending(consumer="test", group=group)
    assert OutageIncident.objects.get().status == OutageIncident.Status.OPEN
    _hand_on_reading(carol, dt.datetime(2026, 11, 2, 19, 0, tzinfo=dt.UTC))
    outages.outages_process_pending(consumer="test", group=group)

    incident.refresh_from_db()
    assert incident.status == OutageIncident.Status.CLOSED
    assert incident.ended_at == dt.datetime(2026, 11, 2, 19, 0, tzinfo=dt.UTC)
    assert incident.duration_class == OutageIncident.Duration.SUSTAINED
    assert not selectors.meters_out_now().exists()


def test_replaying_the_same_events_changes_nothing(feeder_people: dict[str, Any]) -> None:
    alice, bob = feeder_people["alice"].meter.pk, feeder_people["bob"].meter.pk
    events = [{"meter": alice, "ts": T0, "type": "power_off"}, {"meter": bob, "ts": T0, "type": "power_off"}]

    for _ in range(2):
        outages.outages_apply_events(events=events, touched={})

    assert OutageIncident.objects.count() == 1
    assert OutageIncident.objects.get().affected_meters == 2


def test_a_short_outage_is_momentary(feeder_people: dict[str, Any]) -> None:
    alice = feeder_people["alice"].meter.pk
    outages.outages_apply_events(
        events=[
            {"meter": alice, "ts": T0, "type": "power_off"},
            {"meter": alice, "ts": T0 + dt.timedelta(seconds=90), "type": "power_on"},
        ],
        touched={},
    )

    incident = OutageIncident.objects.get()
    assert (incident.status, incident.duration_class) == (
        OutageIncident.Status.CLOSED,
        OutageIncident.Duration.MOMENTARY,
    )


def test_meters_silent_together_on_a_feeder_open_an_incident_but_one_silent_meter_does_not(
    feeder_people: dict[str, Any],
) -> None:
    last = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
    pks = {name: person.meter.pk for name, person in feeder_people.items()}
    outages.outages_apply_readings(newest=dict.fromkeys(pks.values(), last), touched={})
    # alice and bob (north) and dave (south) stop; carol goes on reporting.
    outages.outages_apply_readings(newest={pks["carol"]: last + dt.timedelta(minutes=45)}, touched={})

    outages.outages_check_silent(now=last + dt.timedelta(minutes=46))

    incident = OutageIncident.objects.get()
    assert incident.feeder is not None and incident.feeder.code == "north-f1"
    assert {row.meter_id for row in incident.meters.all()} == {pks["alice"], pks["bob"]}
    assert {row["serial"] for row in selectors.silent_meters(now=last + dt.timedelta(minutes=46))} == {
        feeder_people[name].meter.serial for name in ("alice", "bob", "dave")
    }


def test_a_meter_whose_last_gasp_was_lost_joins_its_feeders_incident_after_one_interval(
    feeder_people: dict[str, Any],
) -> None:
    last = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
    alice, bob, carol = (feeder_people[name].meter.pk for name in ("alice", "bob", "carol"))
    outages.outages_apply_readings(newest=dict.fromkeys((alice, bob, carol), last), touched={})
    outages.outages_apply_events(
        events=[{"meter": pk, "ts": last + dt.timedelta(seconds=7), "type": "power_off"} for pk in (alice, bob)],
        touched={},
    )

    outages.outages_check_silent(now=last + dt.timedelta(minutes=10))
    assert OutageIncident.objects.get().affected_meters == 2
    outages.outages_check_silent(now=last + dt.timedelta(minutes=16, seconds=30))

    incident = OutageIncident.objects.get()
    assert incident.affected_meters == 3
    assert incident.meters.get(meter_id=carol).source == "silent"


def test_meters_back_by_power_on_are_not_taken_for_silent_before_their_next_reading(
    feeder_people: dict[str, Any],
) -> None:
    last = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
    alice, bob = feeder_people["alice"].meter.pk, feeder_people["bob"].meter.pk
    outages.outages_apply_readings(newest=dict.fromkeys((alice, bob), last), touched={})
    back = last + dt.timedelta(hours=1)
    outages.outages_apply_events(
        events=[
            *({"meter": pk, "ts": last + dt.timedelta(seconds=5), "type": "power_off"} for pk in (alice, bob)),
            *({"meter": pk, "ts": back, "type": "power_on"} for pk in (alice, bob)),
        ],
        touched={},
    )

    outages.outages_check_silent(now=back + dt.timedelta(minutes=2))

    assert OutageIncident.objects.get().status == OutageIncident.Status.CLOSED
    assert not selectors.meters_out_now().exists()


class _OMS(helpers.QuietHandler):
    """A tiny outage management system that fails its first request, then accepts."""

    received: list[dict[str, Any]] = []
    failures_left = 1

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _OMS.failures_left > 0:
            _OMS.failures_left -= 1
            self.send_response(503)
        else:
            _OMS.received.append(body)
            self.send_response(200)
        self.end_headers()


@pytest.fixture
def oms() -> Iterator[str]:
    _OMS.received, _OMS.failures_left = [], 1
    with helpers.http_server(_OMS) as base:
        yield f"{base}/incidents"


@pytest.fixture
def eager_celery() -> Iterator[None]:
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_webhook_receiver_gets_the_incident_after_a_failed_first_attempt(
    feeder_people: dict[str, Any], oms: str, eager_celery: None, django_capture_on_commit_callbacks: Any
) -> None:
    alice, bob = feeder_people["alice"].meter.pk, feeder_people["bob"].meter.pk
    events = [{"meter": alice, "ts": T0, "type": "power_off"}, {"meter": bob, "ts": T0, "type": "power_off"}]

    with override_settings(MONITORING_WEBHOOK_URL=oms), django_capture_on_commit_callbacks(execute=True):
        touched: dict[int, str] = {}
        outages.outages_apply_events(events=events, touched=touched)
        from monitoring import webhook

        webhook.incidents_notify(touched)

    assert len(_OMS.received) == 1
    body = _OMS.received[0]
    assert body["event"] == "incident.opened"
    assert body["incident"]["feeder"] == "north-f1"
    assert body["incident"]["affected_customers"] == 2
    assert {m["serial"] for m in body["incident"]["meters"]} == {
        feeder_people["alice"].meter.serial,
        feeder_people["bob"].meter.serial,
    }
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (WebhookDelivery.Status.DELIVERED, 2, 200)


def test_an_outage_applied_again_after_its_restore_is_recorded_once(feeder_people: dict[str, Any]) -> None:
    # A follower that died after applying its entries has them redone; a replay of history may go
    # over the same range again: the same last gasp is the same outage, not a new one.
    alice, bob = (feeder_people[name].meter.pk for name in ("alice", "bob"))
    events = [
        {"meter": alice, "ts": T0, "type": "power_off"},
        {"meter": bob, "ts": T0 + dt.timedelta(seconds=4), "type": "power_off"},
        {"meter": alice, "ts": T0 + dt.timedelta(minutes=40), "type": "power_on"},
        {"meter": bob, "ts": T0 + dt.timedelta(minutes=41), "type": "power_on"},
    ]
    for _ in range(2):
        outages.outages_apply_events(events=events, touched={})
    (incident,) = OutageIncident.objects.all()
    assert incident.status == OutageIncident.Status.CLOSED and incident.affected_meters == 2
    assert (incident.started_at, incident.ended_at) == (T0, T0 + dt.timedelta(minutes=41))
    # A later outage of the same meter is a new one.
    outages.outages_apply_events(events=[{"meter": alice, "ts": T0 + dt.timedelta(hours=3), "type": "power_off"}],
                                 touched={})  # fmt: skip
    assert OutageIncident.objects.count() == 2
