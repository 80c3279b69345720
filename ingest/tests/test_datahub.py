"""Data hub pulls against a local HTTP server playing the hub, into the real MongoDB, Postgres and Redis."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from typing import Any

import pytest

from ingest.datahub import client
from ingest.datahub.pull import PullBusy, datahub_pull
from ingest.models import DataHubConnector, DataHubPull
from ingest.tests.datahub_fake import ROUTE, FakeHub, Scripted, curve, dumps
from mdms.core import stored_batches
from mdms.core.models import Meter
from mdms.core.timeseries import readings as store

DAY = dt.date(2026, 1, 10)
NEXT = DAY + dt.timedelta(days=1)


def pull(connector: DataHubConnector, start: dt.date = DAY, end: dt.date = NEXT) -> DataHubPull:
    return datahub_pull(connector=connector, start=start, end=end, trigger=DataHubPull.Trigger.BACKFILL)


def test_a_pull_imports_a_day(alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]) -> None:
    connector = make_connector(alice)
    stream_before = stored_batches.connection().xlen(stored_batches.STREAM)

    record = pull(connector)

    assert record.status == DataHubPull.Status.OK, record.error
    (request,) = hub.seen
    assert request.path == ROUTE
    assert request.query == {"usage_point_id": connector.usage_point_id, "start": "2026-01-10", "end": "2026-01-11"}
    assert request.authorization == f"Bearer {connector.token}"
    served = curve(connector.usage_point_id, DAY, NEXT)["meter_reading"]["interval_reading"]
    rows = store.readings_for_meter(alice.meter.pk, None, None)
    assert len(rows) == len(served) == record.readings_received == record.readings_stored
    # 00:30 Paris in winter is 23:30 UTC the day before; 1000 W for 30 minutes is 0.5 kWh.
    assert rows[0]["ts"] == dt.datetime(2026, 1, 9, 23, 30, tzinfo=dt.UTC)
    assert rows[0]["power_w"] == float(served[0]["value"]) and rows[0]["energy_import_kwh"] == 0.5
    assert rows[-1]["ts"] == dt.datetime(2026, 1, 10, 23, 0, tzinfo=dt.UTC)
    assert record.attempts == 1 and record.http_status == 200 and record.finished_at is not None
    connector.refresh_from_db()
    assert connector.last_success_day == DAY
    # The stored batch is handed on, so that rollups recompute the day.
    assert stored_batches.connection().xlen(stored_batches.STREAM) == stream_before + 1


def test_re_pulling_a_day_stores_no_duplicates(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    first = pull(connector)
    second = pull(connector)
    assert second.status == DataHubPull.Status.OK
    assert second.readings_stored == 0 and second.duplicates == first.readings_stored
    assert store.count_stored_readings([alice.meter.pk]) == first.readings_stored


def test_a_429_is_retried_after_its_retry_after(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(429, b'{"error": "too_many_requests"}', {"Retry-After": "1"}))
    record = pull(connector)
    assert record.status == DataHubPull.Status.OK and record.attempts == 2
    (gap,) = hub.gaps()
    assert gap >= 1.0
    assert record.readings_stored == store.count_distinct_readings([alice.meter.pk]) > 0


def test_5xx_is_retried_with_backoff_then_recorded_ok(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any], hub_settings: Any
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(500, b"oops"), Scripted(503, b"maintenance"))
    record = pull(connector)
    assert record.status == DataHubPull.Status.OK and record.attempts == 3 and record.http_status == 200
    assert record.error == ""
    first_gap, second_gap = hub.gaps()
    # Equal jitter: at least half of base, then half of twice base.
    assert first_gap >= hub_settings.DATAHUB_RETRY_BASE_S / 2
    assert second_gap >= hub_settings.DATAHUB_RETRY_BASE_S
    assert store.count_distinct_readings([alice.meter.pk]) == record.readings_stored > 0


def test_the_record_says_retrying_while_a_pull_waits(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(503, b"busy"))
    seen_while_waiting: list[tuple[str, int | None, str]] = []

    def sleep(seconds: float) -> None:
        row = DataHubPull.objects.get(connector=connector)
        seen_while_waiting.append((row.status, row.http_status, row.error))

    record = datahub_pull(connector=connector, start=DAY, end=NEXT, trigger=DataHubPull.Trigger.DAILY, sleep=sleep)
    status, http_status, error = seen_while_waiting[-1]
    assert status == DataHubPull.Status.RETRYING and http_status == 503
    assert error.startswith("attempt 1: HTTP 503") and "retrying in" in error
    assert record.status == DataHubPull.Status.OK and record.attempts == 2


def test_5xx_every_time_is_recorded_as_an_error_after_the_last_attempt(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any], hub_settings: Any
) -> None:
    hub_settings.DATAHUB_RETRY_BASE_S = 0.02
    connector = make_connector(alice)
    hub.queue(*[Scripted(502, b"bad gateway")] * hub_settings.DATAHUB_MAX_ATTEMPTS)
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and record.http_status == 502
    assert record.attempts == hub_settings.DATAHUB_MAX_ATTEMPTS == len(hub.seen)
    assert f"gave up after {hub_settings.DATAHUB_MAX_ATTEMPTS} attempts" in record.error
    assert store.count_stored_readings([alice.meter.pk]) == 0
    connector.refresh_from_db()
    assert connector.last_success_day is None


def test_401_is_not_retried_and_recorded_with_its_status(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(401, b'{"error": "invalid_token", "error_description": "token expired"}'))
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and record.http_status == 401 and record.attempts == 1
    assert len(hub.seen) == 1
    assert "HTTP 401" in record.error and "token expired" in record.error
    assert connector.token not in record.error


def test_a_retry_after_beyond_the_cap_ends_the_pull_without_waiting(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(429, b"", {"Retry-After": "3600"}))
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and record.http_status == 429 and record.attempts == 1
    assert "Retry-After asks for 3600 s" in record.error and "DATAHUB_RETRY_MAX_S" in record.error


def test_a_malformed_body_is_an_error_with_its_line_and_nothing_is_stored(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    whole = dumps(curve(connector.usage_point_id, DAY, NEXT))
    cut = whole[: len(whole) // 2]  # the connection dropped half way through the answer
    hub.queue(Scripted(200, cut))
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and record.http_status == 200
    last_line = cut.decode().count("\n") + 1
    assert "malformed answer: payload is not JSON" in record.error
    assert f"line {last_line} column" in record.error
    assert store.count_stored_readings([alice.meter.pk]) == 0


def test_a_bad_value_fails_the_whole_answer_naming_its_line(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    document = curve(connector.usage_point_id, DAY, NEXT)
    elements = document["meter_reading"]["interval_reading"]
    elements[17]["value"] = "oops"
    text = dumps(document).decode()
    offset = text.index('"value": "oops"')
    line, column = text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
    hub.queue(Scripted(200, text.encode()))

    record = pull(connector)

    assert record.status == DataHubPull.Status.ERROR
    assert f"1 of {len(elements)} interval readings are unusable" in record.error
    assert f"interval_reading[17] at line {line}, column {column}: value must be a number, not 'oops'" in record.error
    # All or nothing: the other readings of the answer were not stored either.
    assert store.count_stored_readings([alice.meter.pk]) == 0
    connector.refresh_from_db()
    assert connector.last_success_day is None


def test_an_answer_for_another_usage_point_is_refused(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(200, dumps(curve("99999999999999", DAY, NEXT))))
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR
    assert "usage point '99999999999999', not this connector's" in record.error
    assert store.count_stored_readings([alice.meter.pk]) == 0


def test_readings_outside_the_range_asked_are_refused(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(200, dumps(curve(connector.usage_point_id, DAY, NEXT + dt.timedelta(days=1)))))
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and "is outside the range asked for" in record.error
    assert "interval_reading[48] at line" in record.error
    assert store.count_stored_readings([alice.meter.pk]) == 0


def test_an_empty_curve_is_an_error_so_the_day_is_asked_again(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    document = curve(connector.usage_point_id, DAY, NEXT)
    document["meter_reading"]["interval_reading"] = []
    hub.queue(Scripted(200, dumps(document)))
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and "no interval reading" in record.error


def test_a_redirect_is_not_followed_with_the_token(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    hub.queue(Scripted(302, b"", {"Location": f"{hub.base_url}/elsewhere"}))
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and record.http_status == 302
    assert "not followed" in record.error and f"{hub.base_url}/elsewhere" in record.error
    assert [s.path for s in hub.seen] == [ROUTE]


def test_an_unreachable_hub_is_retried_then_recorded_without_status(
    alice: Any, mongo: Any, make_connector: Callable[..., Any], hub_settings: Any
) -> None:
    hub_settings.DATAHUB_RETRY_BASE_S = 0.02
    with FakeHub() as gone:
        url = gone.base_url
    connector = make_connector(alice, base_url=url)
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and record.http_status is None
    assert record.attempts == hub_settings.DATAHUB_MAX_ATTEMPTS
    assert "could not reach the hub" in record.error


def test_a_disabled_meter_is_not_pulled(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    Meter.objects.filter(pk=alice.meter.pk).update(status=Meter.Status.DISABLED)
    connector.refresh_from_db()
    record = pull(connector)
    assert record.status == DataHubPull.Status.ERROR and "is disabled" in record.error
    assert hub.seen == []


def test_a_second_pull_of_a_connector_in_flight_is_refused_unless_the_first_was_abandoned(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    connector = make_connector(alice)
    in_flight = DataHubPull.objects.create(
        connector=connector, start_day=DAY, end_day=NEXT, trigger="daily", started_at=dt.datetime.now(tz=dt.UTC)
    )
    with pytest.raises(PullBusy):
        pull(connector)
    assert hub.seen == []
    DataHubPull.objects.filter(pk=in_flight.pk).update(started_at=dt.datetime.now(tz=dt.UTC) - dt.timedelta(hours=2))
    assert pull(connector).status == DataHubPull.Status.OK
    in_flight.refresh_from_db()
    assert in_flight.status == DataHubPull.Status.ERROR and in_flight.error.startswith("abandoned")


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = dt.datetime(2026, 11, 22, 7, 0, tzinfo=dt.UTC)
    assert client.retry_after_s("7", now=now) == 7.0
    in_two_minutes = email.utils.format_datetime(now + dt.timedelta(minutes=2), usegmt=True)
    assert client.retry_after_s(in_two_minutes, now=now) == 120.0
    assert client.retry_after_s("Sun, 22 Nov 2026 06:00:00 GMT", now=now) == 0.0  # in the past: now
    assert client.retry_after_s("soon", now=now) is None
    assert client.retry_after_s(None, now=now) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = client.RetryPolicy(max_attempts=10, base_s=2.0, max_wait_s=10.0, timeout_s=1.0)
    for failures, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (9, 10.0)):
        waits = [policy.backoff_s(failures) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1


def test_the_request_url_follows_the_connector_path(
    alice: Any, hub: FakeHub, make_connector: Callable[..., Any], mongo: Any
) -> None:
    connector = make_connector(alice, base_url=hub.base_url + "/", path="mirror/enedis/load_curve")
    pull(connector)
    assert [s.path for s in hub.seen] == ["/mirror/enedis/load_curve"]


def test_pulled_readings_keep_the_data_hub_as_their_source(
    alice: Any, mongo: Any, hub: FakeHub, make_connector: Callable[..., Any]
) -> None:
    assert pull(make_connector(alice)).status == DataHubPull.Status.OK
    rows = store.readings_for_meter(alice.meter.pk, None, None)
    # The fake hub's points are the meter's own ("B"): measured, so no quality field.
    assert rows and {(r["origin"], r.get("quality")) for r in rows} == {("datahub", None)}
