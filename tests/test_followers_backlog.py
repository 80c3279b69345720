"""The stored-batches followers under a backlog with an outage season in it: none starves the others,
and replaying history builds the past's incidents, with their own times, and no false ones.

Real Redis (the stream, the locks), MongoDB (readings, events, rollups, anomalies) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from stream_support import publish_hourly

from billing import rollups
from mdms.core import followers, stored_batches
from mdms.core.testing import make_consumer, make_grid
from mdms.core.timeseries import anomalies as anomaly_store
from mdms.core.timeseries import rollups as rollup_store
from monitoring import outages, selectors, services
from monitoring.models import IncidentMeter, OutageIncident
from monitoring.tests import helpers

# The backlog: three days of September, hour by hour, as a backfill hands them on.
D0 = dt.datetime(2026, 9, 16, tzinfo=dt.UTC)
DAYS = 3
HOUR = dt.timedelta(hours=1)
# Each day, alice and bob (feeder north) go out four times for an hour: their last gasps and their
# power_on events are in the backlog. carol (north) and dave (south) report all along.
OUTAGE_HOURS = (2, 8, 14, 20)
# The months before: an outage season already in PostgreSQL.
PAST_INCIDENTS = 2_000


@pytest.fixture
def clean_stream() -> Iterator[None]:
    """A stream of our own: every follower's group starts with this test's entries."""
    client = stored_batches.connection()
    client.delete(stored_batches.STREAM)
    yield
    client.delete(stored_batches.STREAM)
    for group in (rollups.GROUP, services.DETECT_GROUP, outages.OUTAGES_GROUP):
        client.delete(followers.LOCK_PREFIX + group)


@pytest.fixture
def people(db: None, mongo: Any) -> dict[str, int]:
    north, south = make_grid("north"), make_grid("south")
    pks = {name: make_consumer(name, feeder=north).meter.pk for name in ("alice", "bob", "carol")}
    pks["dave"] = make_consumer("dave", feeder=south).meter.pk
    return pks


def _outages() -> list[tuple[dt.datetime, dt.datetime]]:
    """(power_off, power_on) of every outage in the backlog."""
    return [
        (D0 + dt.timedelta(days=day, hours=hour, seconds=5), D0 + dt.timedelta(days=day, hours=hour + 1, seconds=7))
        for day in range(DAYS)
        for hour in OUTAGE_HOURS
    ]


def _past_season(feeder_meters: list[int]) -> None:
    """PAST_INCIDENTS closed incidents of the months before the backlog, each with its meters."""
    feeder = make_grid("north")
    start = D0 - dt.timedelta(hours=PAST_INCIDENTS * 2)
    incidents = OutageIncident.objects.bulk_create(
        OutageIncident(
            feeder=feeder,
            region=feeder.region,
            status=OutageIncident.Status.CLOSED,
            started_at=start + dt.timedelta(hours=2 * i),
            ended_at=start + dt.timedelta(hours=2 * i, minutes=40),
            duration_class=OutageIncident.Duration.SUSTAINED,
            affected_meters=len(feeder_meters),
        )
        for i in range(PAST_INCIDENTS)
    )
    IncidentMeter.objects.bulk_create(
        IncidentMeter(
            incident=incident,
            meter_id=pk,
            source=IncidentMeter.Source.LAST_GASP,
            out_since=incident.started_at,
            restored_at=incident.ended_at,
            restored_by="power_on",
        )
        for incident in incidents
        for pk in feeder_meters
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE monitoring_outageincident")
        cursor.execute("ANALYZE monitoring_incidentmeter")


def _store_backlog(people: dict[str, int]) -> int:
    """Store three days of readings and the outages' events, and hand them on hour by hour, as the
    ingest does during a backfill; returns the stream entries."""
    out = [people["alice"], people["bob"]]
    windows = _outages()
    readings = [
        reading
        for pk in people.values()
        for reading in helpers.household(pk, D0, D0 + dt.timedelta(days=DAYS), seed=pk)
        if pk not in out or not any(off < reading["ts"] <= on for off, on in windows)
    ]
    helpers.store(readings)
    events = [
        (pk, ts, kind) for off, on in windows for pk in out for ts, kind in ((off, "power_off"), (on, "power_on"))
    ]
    helpers.store_events(events)
    return publish_hourly(readings, events, D0, D0 + dt.timedelta(days=DAYS))


def test_a_backlog_with_an_outage_season_and_a_busy_outage_follower_still_advances_every_follower(
    people: dict[str, int], clean_stream: None
) -> None:
    _past_season([people["alice"], people["bob"], people["carol"]])
    total = _store_backlog(people)
    groups = (rollups.GROUP, services.DETECT_GROUP, outages.OUTAGES_GROUP)
    assert {group: stored_batches.backlog(group) for group in groups} == dict.fromkeys(groups, total)

    # The outage follower is busy (a long run holds its lock and beats): the others go on regardless.
    with followers.follower_run(outages.OUTAGES_GROUP, "long-outage-run") as busy:
        assert busy is not None
        rolled = judged = 0
        for _round in range(total):
            step = rollups.rollups_follow(consumer="test", count=10, budget_s=0).batches
            assert step > 0, "the rollup follower made no progress"
            rolled += step
            if stored_batches.backlog(rollups.GROUP) == 0:
                break
        for _round in range(total):
            before = stored_batches.backlog(services.DETECT_GROUP)
            status = services.anomalies_detect_pending(consumer="test", budget_s=0.0)
            assert "skipped" not in status
            judged += status["scanned"]
            assert stored_batches.backlog(services.DETECT_GROUP) < before, "detection made no progress"
            if stored_batches.backlog(services.DETECT_GROUP) == 0:
                break
        # A second outage run while the first works returns at once and takes nothing.
        assert outages.outages_process_pending(consumer="second", count=10)["skipped"] == 1
        assert stored_batches.backlog(outages.OUTAGES_GROUP) == total

    assert rolled == total and stored_batches.backlog(rollups.GROUP) == 0
    readings_stored = DAYS * 96 * len(people) - DAYS * len(OUTAGE_HOURS) * 4 * 2
    assert judged == readings_stored and stored_batches.backlog(services.DETECT_GROUP) == 0
    days = rollup_store.daily_documents(list(people.values()), D0.date(), (D0 + dt.timedelta(days=DAYS)).date())
    assert {(doc["meter"], doc["day"]) for doc in days} >= {
        (pk, (D0 + dt.timedelta(days=day)).date().isoformat()) for pk in people.values() for day in range(1, DAYS)
    }

    # Now the outage follower, in runs of 10 entries, with the silent-meter check ticking in between.
    applied = 0
    for _round in range(total):
        before = stored_batches.backlog(outages.OUTAGES_GROUP)
        applied += outages.outages_process_pending(consumer="test", count=10)["entries"]
        assert stored_batches.backlog(outages.OUTAGES_GROUP) < before, "the outage follower made no progress"
        outages.outages_check_silent()
        _assert_no_reporting_meter_is_out(people)
        if stored_batches.backlog(outages.OUTAGES_GROUP) == 0:
            break
    assert applied == total

    # The past's incidents, from the past's last gasps and power_on events, with their own times.
    replayed = OutageIncident.objects.filter(started_at__gte=D0).order_by("started_at")
    assert [(i.started_at, i.ended_at, i.status, i.affected_meters, i.affected_customers) for i in replayed] == [
        (off, on, OutageIncident.Status.CLOSED, 2, 2) for off, on in _outages()
    ]
    assert not OutageIncident.objects.filter(status=OutageIncident.Status.OPEN).exists()
    assert not IncidentMeter.objects.filter(source=IncidentMeter.Source.SILENT).exists()
    # The operator's silent list, by the same clock, agrees: nobody is silent at the end of the replay.
    assert selectors.silent_meters() == []


def _assert_no_reporting_meter_is_out(people: dict[str, int]) -> None:
    """Whoever is out now must be silent by the stream's clock (or have sent a last gasp)."""
    now = selectors.silence_now()
    limit = dt.timedelta(seconds=settings.MONITORING_SILENT_INTERVALS * 900) + outages.SILENCE_GRACE
    seen = anomaly_store.last_seen(people.values())
    for row in IncidentMeter.objects.filter(restored_at__isnull=True):
        assert row.source == IncidentMeter.Source.LAST_GASP or now - seen[row.meter_id] > limit, row


def test_replayed_history_opens_no_incident_for_meters_that_report_though_the_wall_clock_is_months_ahead(
    people: dict[str, int], clean_stream: None
) -> None:
    # Only readings, months old, every meter reporting all along.
    for pk in people.values():
        helpers.store(list(helpers.household(pk, D0, D0 + dt.timedelta(days=1), seed=pk)))
    hour = D0
    while hour < D0 + dt.timedelta(days=1):
        stored_batches.publish(
            kind="readings", meter_pks=list(people.values()), min_ts=hour + HOUR / 4, max_ts=hour + HOUR, count=16
        )
        hour += HOUR

    while outages.outages_process_pending(consumer="test", count=3)["entries"]:
        assert outages.outages_check_silent() == {}
    assert not OutageIncident.objects.exists()
    # By the wall clock every one of them would have looked silent for months; by the stream's, the
    # replay's last reading is a moment ago (plus the wall time this test took since it was applied).
    now = selectors.silence_now()
    assert D0 + dt.timedelta(days=1) <= now < D0 + dt.timedelta(days=1, minutes=1)


def test_a_live_outage_becomes_an_incident_within_two_intervals_by_the_streams_clock(
    people: dict[str, int], clean_stream: None
) -> None:
    wall = dt.datetime.now(tz=dt.UTC).replace(second=0, microsecond=0)
    quiet_since = wall - dt.timedelta(minutes=32)  # two 15-minute intervals and the grace have gone by
    outages.outages_apply_readings(
        newest={people["alice"]: quiet_since, people["bob"]: quiet_since, people["carol"]: wall}, touched={}
    )
    anomaly_store.stream_clock_advance(wall, at=wall)

    touched = outages.outages_check_silent()

    incident = OutageIncident.objects.get()
    assert set(touched) == {incident.pk}
    assert {row.meter_id for row in incident.meters.all()} == {people["alice"], people["bob"]}
    assert incident.started_at == quiet_since


def test_when_every_meter_falls_silent_the_streams_clock_goes_on_with_the_wall_clock(
    people: dict[str, int], clean_stream: None
) -> None:
    wall = dt.datetime.now(tz=dt.UTC)
    last = wall - dt.timedelta(minutes=40)
    north = [people["alice"], people["bob"], people["carol"]]
    outages.outages_apply_readings(newest=dict.fromkeys(north, last), touched={})
    # Nothing has been heard since `last`, applied at once, and nothing waits in the stream: the
    # stream's time goes on with the wall's.
    anomaly_store.stream_clock_advance(last, at=last)

    outages.outages_check_silent()

    incident = OutageIncident.objects.get()
    assert incident.affected_meters == 3
    assert selectors.silence_now(wall=wall) == wall


def test_finding_a_feeders_open_incident_reads_an_index_range_whatever_the_history(people: dict[str, int]) -> None:
    _past_season([people["alice"], people["bob"], people["carol"]])
    feeder = make_grid("north")
    since = D0 + dt.timedelta(hours=5)

    plan = (
        OutageIncident.objects.filter(
            status=OutageIncident.Status.OPEN,
            feeder=feeder,
            started_at__gte=since - outages.CORRELATION_WINDOW,
            started_at__lte=since + outages.CORRELATION_WINDOW,
        )
        .order_by("started_at")
        .explain()
    )

    assert "incident_status_feeder_start" in plan
    assert "Seq Scan" not in plan


def test_while_the_outage_follower_has_a_backlog_its_clock_waits_for_it(
    people: dict[str, int], clean_stream: None
) -> None:
    wall = dt.datetime.now(tz=dt.UTC).replace(microsecond=0)  # MongoDB keeps milliseconds
    applied = wall - dt.timedelta(hours=2)
    anomaly_store.stream_clock_advance(applied, at=applied)
    assert selectors.silence_now(wall=wall) == wall  # caught up: nothing heard for two hours

    # Readings stored but not yet applied by the outage follower: silence is judged at its position.
    stored_batches.publish(kind="readings", meter_pks=[people["alice"]], min_ts=wall, max_ts=wall, count=1)
    assert selectors.silence_now(wall=wall) == applied


def test_the_outage_followers_work_per_day_of_backlog_does_not_grow_with_the_incidents_in_history(
    people: dict[str, int], clean_stream: None
) -> None:
    total = _store_backlog(people)
    per_day = total // DAYS  # 24 readings entries and 8 events entries, the same shape every day

    def one_day() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert outages.outages_process_pending(consumer="test", count=per_day)["entries"] == per_day
        return len(queries.captured_queries)

    one_day()
    before = one_day()
    _past_season([people["alice"], people["bob"], people["carol"]])
    after = one_day()

    assert after == before
    assert OutageIncident.objects.filter(started_at__gte=D0).count() == DAYS * len(OUTAGE_HOURS)


def test_an_incident_of_the_past_counts_the_customers_who_lived_there_on_its_day(db: None, mongo: Any) -> None:
    north = make_grid("north")
    alice = make_consumer("alice", feeder=north).meter.pk
    # erin moved in after the outage of 16 September: she was not affected by it.
    erin = make_consumer("erin", feeder=north, move_in=dt.date(2026, 10, 1)).meter.pk
    off = D0 + dt.timedelta(hours=2)

    outages.outages_apply_events(
        events=[{"meter": pk, "ts": off, "type": "power_off"} for pk in (alice, erin)], touched={}
    )

    incident = OutageIncident.objects.get()
    assert (incident.affected_meters, incident.affected_customers) == (2, 1)


# Daily interval blocks: one message carries a meter's day of 96 quarter-hours (the MQTT contract's
# JSON list), delivered an hour after the day ends; its readings share the message's received_at.
DAY = dt.timedelta(days=1)


def _publish_blocks(blocks: list[tuple[list[int], int]]) -> None:
    """Store and hand on, in this order, each (meters, day) as one block per meter and one stream entry."""
    for pks, day in blocks:
        start = D0 + day * DAY
        documents = []
        for pk in pks:
            for reading in helpers.household(pk, start, start + DAY, seed=pk + day):
                documents.append({**reading, "received_at": start + DAY + HOUR})
        helpers.store(documents)
        stored_batches.publish(
            kind="readings", meter_pks=pks, min_ts=start + HOUR / 4, max_ts=start + DAY, count=len(documents)
        )


def _follow_and_check(rounds: int) -> dict[int, str]:
    """The outage follower, one entry a run, with the silent-meter check after each run."""
    touched: dict[int, str] = {}
    for _round in range(rounds):
        assert outages.outages_process_pending(consumer="test", count=1)["entries"] == 1
        touched.update(outages.outages_check_silent())
    return touched


def test_meters_replaying_daily_blocks_out_of_step_are_not_silent(people: dict[str, int], clean_stream: None) -> None:
    # alice and carol (north) replay a day ahead of bob (north) and dave (south): when bob's block of
    # a day arrives, the stream's time is already at the end of the next day.
    ahead, behind = [people["alice"], people["carol"]], [people["bob"], people["dave"]]
    order = [(ahead, 0), (ahead, 1), (behind, 0), (ahead, 2), (behind, 1), (ahead, 3), (behind, 2), (behind, 3)]
    _publish_blocks(order)

    assert _follow_and_check(len(order) - 1) == {}
    # Each block meter earned the slack of its cadence: a block's span (23:45), and for those whose
    # block came a day behind the stream's time, that day.
    block_span = DAY - HOUR / 4
    assert _slack(people) == {**dict.fromkeys(ahead, block_span), **dict.fromkeys(behind, block_span + DAY)}

    # The last block catches bob and dave up: their slack is the span again.
    assert _follow_and_check(1) == {}
    assert _slack(people) == dict.fromkeys(people.values(), block_span)
    assert not OutageIncident.objects.exists()
    assert selectors.silence_now() >= D0 + 4 * DAY
    assert selectors.silent_meters() == []


def _slack(people: dict[str, int]) -> dict[int, dt.timedelta]:
    overdue = anomaly_store.last_seen_overdue(D0 + 10 * DAY)  # everyone, by a time far ahead
    return {pk: overdue[pk][1] for pk in people.values()}


def test_a_block_meter_whose_next_block_is_overdue_beyond_its_span_and_the_limit_is_put_out(
    people: dict[str, int], clean_stream: None
) -> None:
    everyone = list(people.values())
    going_on = [people["alice"], people["dave"]]
    stopped = [people["bob"], people["carol"]]  # two on north: enough to open an incident alone
    _publish_blocks([(everyone, 0), (everyone, 1), (going_on, 2)])

    # The stream's time is the end of day 2: bob's and carol's block of day 2 may still come.
    assert _follow_and_check(3) == {}
    last_block_end = D0 + 2 * DAY
    limit = (
        (DAY - HOUR / 4)  # the span of their last block
        + dt.timedelta(seconds=settings.MONITORING_SILENT_INTERVALS * 900)
        + outages.SILENCE_GRACE
    )
    assert outages.outages_check_silent(now=last_block_end + limit) == {}
    assert not OutageIncident.objects.exists()

    # A day more of the stream and their block of day 2 has not come: they are out since their last reading.
    _publish_blocks([(going_on, 3)])
    touched = _follow_and_check(1)

    incident = OutageIncident.objects.get()
    assert touched == {incident.pk: "incident.opened"}
    assert incident.feeder == make_grid("north")
    assert {(row.meter_id, row.source, row.out_since) for row in incident.meters.all()} == {
        (pk, IncidentMeter.Source.SILENT, last_block_end) for pk in stopped
    }
    assert {row["meter"] for row in selectors.silent_meters()} == set(stopped)


def test_a_block_meter_delivering_each_day_an_hour_late_is_not_silent_between_blocks() -> None:
    span, interval = DAY - HOUR / 4, dt.timedelta(minutes=15)
    # Live: the block of day D (ending at midnight) is applied at 01:00, an hour behind the stream.
    slack = selectors.silence_slack(span=span, behind=HOUR, interval=interval)
    assert slack == span + HOUR
    midnight = D0 + DAY
    next_block = midnight + DAY + HOUR
    assert not selectors.is_silent(now=next_block, seen=midnight, slack=slack, interval_s=900, missed=2)
    # Two quarter-hours after the hour it usually comes, it is overdue.
    overdue = next_block + 2 * interval + dt.timedelta(seconds=1)
    assert selectors.is_silent(now=overdue, seen=midnight, slack=slack, interval_s=900, missed=2)
    # A meter publishing each reading as it ends keeps no slack: two missed intervals are its limit.
    assert selectors.silence_slack(span=dt.timedelta(0), behind=HOUR, interval=interval) == dt.timedelta(0)
