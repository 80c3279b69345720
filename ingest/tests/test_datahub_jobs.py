"""The daily pull job and the backfill command, against the fake hub and the real services."""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from ingest.datahub import services
from ingest.datahub.pull import datahub_pull
from ingest.datahub.tasks import datahub_pull_yesterday
from ingest.management.commands.datahub_backfill import earliest_day
from ingest.models import DataHubConnector, DataHubPull
from ingest.tests.datahub_fake import FakeHub, Scripted
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as store
from mdms.core.timeseries import rollups as rollup_store

ONE_DAY = dt.timedelta(days=1)


def asked(hub: FakeHub) -> list[tuple[str, str, str]]:
    return [(s.query["usage_point_id"], s.query["start"], s.query["end"]) for s in hub.seen]


def backfill(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("datahub_backfill", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# The daily job -------------------------------------------------------------------------------


def test_the_daily_job_pulls_yesterday_for_each_enabled_connector_only(
    alice: Any, bob: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    today = timezone.localdate()
    yesterday = today - ONE_DAY
    mine = make_connector(alice)
    make_connector(bob, enabled=False)

    summary = services.datahub_pull_due(today=today)

    assert asked(hub) == [(mine.usage_point_id, yesterday.isoformat(), today.isoformat())]
    assert summary.ok == 1 and summary.errors == 0
    assert store.count_distinct_readings([alice.meter.pk]) == summary.readings_stored > 0
    assert store.count_stored_readings([bob.meter.pk]) == 0
    mine.refresh_from_db()
    assert mine.last_success_day == yesterday


def test_the_daily_job_run_twice_pulls_once(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    make_connector(alice)
    first = datahub_pull_yesterday()  # the Celery task, run in this process
    second = datahub_pull_yesterday()
    assert len(hub.seen) == 1
    assert first["ok"] == 1 and second == {
        "ok": 0,
        "errors": 0,
        "busy": 0,
        "readings_stored": 0,
        "continues_after": None,
    }
    assert store.count_stored_readings([alice.meter.pk]) == first["readings_stored"]


def test_the_daily_job_catches_up_missed_days_within_its_window(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any], hub_settings: Any
) -> None:
    today = dt.date(2026, 1, 20)
    connector = make_connector(alice)
    DataHubConnector.objects.filter(pk=connector.pk).update(created_at=dt.datetime(2025, 12, 1, 12, tzinfo=dt.UTC))
    connector.refresh_from_db()
    # 16 January came in fine; 13 to 15 January, and 17 to 19 January, were missed (hub down).
    datahub_pull(connector=connector, start=dt.date(2026, 1, 16), end=dt.date(2026, 1, 17), trigger="daily")
    hub.seen.clear()

    summary = services.datahub_pull_due(today=today)

    # The window is the last DATAHUB_CATCHUP_DAYS (7) days up to yesterday, less the day pulled ok.
    assert asked(hub) == [
        (connector.usage_point_id, "2026-01-13", "2026-01-16"),
        (connector.usage_point_id, "2026-01-17", "2026-01-20"),
    ]
    assert summary.ok == 2
    connector.refresh_from_db()
    assert connector.last_success_day == dt.date(2026, 1, 19)


def test_a_failed_day_is_asked_again_the_next_morning(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any], hub_settings: Any
) -> None:
    hub_settings.DATAHUB_MAX_ATTEMPTS = 1
    connector = make_connector(alice)
    DataHubConnector.objects.filter(pk=connector.pk).update(created_at=dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC))
    hub.queue(Scripted(503, b"down"))
    assert services.datahub_pull_due(today=dt.date(2026, 1, 20)).errors == 1
    hub.seen.clear()
    summary = services.datahub_pull_due(today=dt.date(2026, 1, 21))
    assert asked(hub) == [(connector.usage_point_id, "2026-01-14", "2026-01-21")]
    assert summary.ok == 1


def test_a_new_connector_is_pulled_from_the_day_before_it_was_created_not_earlier(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    created = timezone.localdate(connector.created_at)
    services.datahub_pull_due(today=created + dt.timedelta(days=3))
    # Not the whole 7-day window: older history is the backfill's.
    assert asked(hub) == [
        (connector.usage_point_id, (created - ONE_DAY).isoformat(), (created + dt.timedelta(days=3)).isoformat())
    ]


def test_the_daily_job_stops_at_its_budget_and_says_where_to_go_on(
    alice: Any, bob: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    first = make_connector(alice)
    second = make_connector(bob)
    summary = services.datahub_pull_due(budget_s=0.0)
    assert summary.next_after_pk == first.pk and [s.query["usage_point_id"] for s in hub.seen] == [first.usage_point_id]
    rest = services.datahub_pull_due(after_pk=summary.next_after_pk)
    assert rest.ok == 1 and hub.seen[-1].query["usage_point_id"] == second.usage_point_id


@given(st.sets(st.integers(min_value=0, max_value=60), max_size=40))
def test_chunks_cover_exactly_the_days_in_ranges_of_at_most_seven(offsets: set[int]) -> None:
    days = {dt.date(2026, 3, 1) + dt.timedelta(days=n) for n in offsets}
    ranges = list(services.chunks(days))
    covered = [start + dt.timedelta(days=n) for start, end in ranges for n in range((end - start).days)]
    assert sorted(covered) == sorted(days)  # every day once, none added
    assert all(1 <= (end - start).days <= services.CHUNK_DAYS for start, end in ranges)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))


# The backfill command --------------------------------------------------------------------------


def test_backfill_chunks_by_seven_days_shows_progress_and_is_resumable(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any], hub_settings: Any
) -> None:
    hub_settings.DATAHUB_MAX_ATTEMPTS = 1
    connector = make_connector(alice)
    today = timezone.localdate()
    start, end = today - dt.timedelta(days=20), today - dt.timedelta(days=5)  # 16 days: 7 + 7 + 2
    hub.queue(Scripted(), Scripted(500, b"hub broke"))  # the second week fails

    with pytest.raises(CommandError, match="1 of 3 requests did not succeed: run the same command again"):
        backfill("--meter", alice.meter.serial, "--from", start.isoformat(), "--to", end.isoformat())

    weeks = [
        (start + dt.timedelta(days=7 * n), min(start + dt.timedelta(days=7 * (n + 1)), end + ONE_DAY)) for n in range(3)
    ]
    assert asked(hub) == [(connector.usage_point_id, a.isoformat(), b.isoformat()) for a, b in weeks]
    failed = DataHubPull.objects.get(status=DataHubPull.Status.ERROR)
    assert (failed.start_day, failed.end_day, failed.http_status) == (*weeks[1], 500)

    hub.seen.clear()
    out, err = backfill("--meter", alice.meter.serial, "--from", start.isoformat(), "--to", end.isoformat())
    assert asked(hub) == [(connector.usage_point_id, weeks[1][0].isoformat(), weeks[1][1].isoformat())]
    assert "1 requests, 1 ok, 0 failed" in out and "9 days already pulled skipped" in out
    assert "1/1" in err  # the tqdm bar, on stderr
    assert store.count_distinct_readings([alice.meter.pk]) == len(set(hub.served_dates))
    # The pulled days were reprocessed (rolled up, validated, judged), with progress: no follower ran here.
    assert "vee" in err and "detection" in err
    rolled = rollup_store.daily_documents([alice.meter.pk], start, end + ONE_DAY, fields=("intervals",))
    assert len(rolled) == (end - start).days + 1

    hub.seen.clear()
    out, _ = backfill("--meter", alice.meter.serial, "--from", start.isoformat(), "--to", end.isoformat())
    assert hub.seen == [] and "0 requests" in out and "16 days already pulled skipped" in out

    stored_before = store.count_stored_readings([alice.meter.pk])
    out, _ = backfill("--all", "--from", start.isoformat(), "--to", end.isoformat(), "--force")
    assert len(hub.seen) == 3
    assert "3 requests, 3 ok, 0 failed" in out and "0 readings stored" in out
    assert store.count_stored_readings([alice.meter.pk]) == stored_before


def test_backfill_refuses_more_than_two_years_back(alice: Any, make_connector: Callable[..., Any]) -> None:
    make_connector(alice)
    earliest = earliest_day(timezone.localdate())
    too_old = (earliest - ONE_DAY).isoformat()
    with pytest.raises(CommandError, match=f"more than two years back: the earliest day is {earliest}"):
        backfill("--all", "--from", too_old)


def test_backfill_names_what_is_wrong_with_its_arguments(alice: Any, make_connector: Callable[..., Any]) -> None:
    make_connector(alice)
    today = timezone.localdate()
    week_ago, two_weeks_ago = (today - dt.timedelta(days=7)).isoformat(), (today - dt.timedelta(days=14)).isoformat()
    with pytest.raises(CommandError, match="--from must be a date like 2025-01-31, not '2026-13-01'"):
        backfill("--all", "--from", "2026-13-01")
    with pytest.raises(CommandError, match="meter 'NOSUCH' has no data hub connector"):
        backfill("--meter", "NOSUCH", "--from", week_ago)
    with pytest.raises(CommandError, match=f"--from {week_ago} is after --to {two_weeks_ago}"):
        backfill("--all", "--from", week_ago, "--to", two_weeks_ago)
    with pytest.raises(CommandError, match="is not in the past"):
        backfill("--all", "--from", week_ago, "--to", today.isoformat())


def test_backfill_refuses_a_disabled_connector(db: None, make_connector: Callable[..., Any]) -> None:
    carol = make_consumer("carol")
    make_connector(carol, enabled=False)
    with pytest.raises(CommandError, match="is disabled"):
        backfill("--meter", carol.meter.serial, "--from", (timezone.localdate() - dt.timedelta(days=3)).isoformat())
