"""At the end of a replay of history (issue 13): no incident is open for a meter that reports, and the
operator's tiles agree with the lists under them, in a real browser (headless Chromium).

Two days up to now are stored and handed to the followers hour by hour, as a backfill does: alice and
bob (feeder north) go out for an hour yesterday (last gasps, then power_on), carol (north) falls
silent two hours before the end, dave and erin (south) report all along. The three followers run
over the backlog round by round, as their workers would; after every round of the outage follower,
and at the end, no open incident holds a meter with a reading after it went out, nor a meter out for
silence whose newest reading is within MONITORING_SILENT_INTERVALS intervals of the stream's time.

Real MongoDB, Redis (the stream), PostgreSQL and a live server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from stream_support import publish_hourly

from billing import rollups
from mdms.core import followers, stored_batches
from mdms.core.testing import make_consumer, make_grid
from mdms.core.timeseries import anomalies as anomaly_store
from monitoring import outages, selectors, services
from monitoring.models import IncidentMeter
from monitoring.tests import helpers
from portal.tests.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]

STEP = dt.timedelta(minutes=15)
HOUR = dt.timedelta(hours=1)
GROUPS = (rollups.GROUP, services.DETECT_GROUP, outages.OUTAGES_GROUP)


@pytest.fixture
def clean_stream() -> Iterator[None]:
    client = stored_batches.connection()
    client.delete(stored_batches.STREAM)
    yield
    client.delete(stored_batches.STREAM)
    for group in GROUPS:
        client.delete(followers.LOCK_PREFIX + group)


def _replay(meters: dict[str, int], end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Store two days up to `end` and hand them on hour by hour; returns alice and bob's outage (off, on)."""
    start = end - dt.timedelta(days=2)
    off = end - dt.timedelta(days=1, hours=3) + dt.timedelta(seconds=5)
    on = off + HOUR
    silent_from = end - 2 * HOUR
    readings = []
    for name, pk in meters.items():
        for reading in helpers.household(pk, start, end, seed=pk):
            if name in ("alice", "bob") and off < reading["ts"] <= on:
                continue
            if name == "carol" and reading["ts"] > silent_from:
                continue
            readings.append(reading)
    helpers.store(readings)
    events = [
        (meters[name], ts, kind) for name in ("alice", "bob") for ts, kind in ((off, "power_off"), (on, "power_on"))
    ]
    helpers.store_events(events)
    publish_hourly(readings, events, start, end)
    return off, on


def _wrongly_open() -> list[str]:
    """Open incident meters that reported after they went out, or are out for a silence within their limit."""
    rows = list(selectors.meters_out_now())
    seen = anomaly_store.last_seen([row.meter_id for row in rows])
    now = selectors.silence_now()
    wrong = []
    for row in rows:
        newest = seen.get(row.meter_id)
        if newest is None:
            continue
        limit = dt.timedelta(seconds=settings.MONITORING_SILENT_INTERVALS * row.meter.interval_s)
        if newest > row.out_since or (row.source == IncidentMeter.Source.SILENT and newest >= now - limit):
            wrong.append(f"{row.meter.serial}: out since {row.out_since}, newest reading {newest}, stream at {now}")
    return wrong


def test_after_a_replay_no_reporting_meter_is_out_and_the_tiles_agree_with_the_lists(
    live_server: Any, browser_page: Any, olivia: Any, mongo: Any, clean_stream: None
) -> None:
    north, south = make_grid("north"), make_grid("south")
    meters = {name: make_consumer(name, feeder=north).meter.pk for name in ("alice", "bob", "carol")}
    meters |= {name: make_consumer(name, feeder=south).meter.pk for name in ("dave", "erin")}
    now = dt.datetime.now(dt.UTC)
    end = now - (now - dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) % STEP
    off, on = _replay(meters, end)

    # The followers, round by round as their workers run them, until each has done the whole backlog.
    for _round in range(500):
        rollups.rollups_follow(consumer="replay", count=10, budget_s=0)
        services.anomalies_detect_pending(consumer="replay", budget_s=0.0)
        outages.outages_process_pending(consumer="replay", count=10)
        assert _wrongly_open() == [], "an incident is open for a meter that reports, during the replay"
        if all(stored_batches.backlog(group) == 0 for group in GROUPS):
            break
    assert all(stored_batches.backlog(group) == 0 for group in GROUPS)
    outages.outages_check_silent()
    assert _wrongly_open() == []
    # The past's outage is in history, with its own times, and closed.
    past = IncidentMeter.objects.filter(meter_id=meters["alice"]).get()
    assert past.restored_at is not None and abs(past.out_since - off) < STEP and abs(past.restored_at - on) < STEP
    out_now = {row.meter_id for row in selectors.meters_out_now()}
    assert out_now <= {meters["carol"]}, "only carol, silent for two hours, may be out"

    log_in(browser_page, live_server.url, "olivia", "olivia-pw")
    browser_page.goto(f"{live_server.url}/operator/")
    browser_page.wait_for_selector("#incidents")

    def tile(state: str) -> int:
        return int(browser_page.locator(f".kpi.state-{state} .value").text_content().strip())

    incident_rows = browser_page.locator("#incidents tr.incident").count()
    silent_rows = browser_page.locator("#incidents h2:text('Silent meters') + table tbody tr").count()
    open_sub = browser_page.locator(".kpi.state-out .sub").text_content().strip()
    # The "N open incidents" under the tile is the table under it, row for row.
    assert open_sub.split()[0] == str(incident_rows)
    # One meter per premise here: a premise out is a meter of an open incident; every silent meter
    # is listed, and its premise is either out (its silence opened or joined an incident) or silent.
    assert tile("out") == len(out_now)
    assert (incident_rows > 0) == (tile("out") > 0)
    assert silent_rows == 1, "carol, and only carol, is silent"
    assert tile("out") + tile("silent") == silent_rows
    assert tile("out") + tile("silent") + tile("anomaly") + tile("normal") + tile("disconnected") == len(meters)
