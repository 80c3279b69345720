"""One pull: a connector's load curve for a range of local days, fetched, judged whole, stored, recorded.

Storage goes through the ingest pipeline, as for import_readings: the dedupe makes a re-pull store
nothing new, and the stored batch is handed on (mdms.core.stored_batches) so rollups follow.
Every pull leaves a DataHubPull row: running, retrying (between attempts), then ok or error with
the HTTP status and why.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.db.models import Q

from ingest import parsing, pipeline
from ingest.datahub import body as answers
from ingest.datahub.client import HubError, LoadCurveRequest, Retry, RetryPolicy, fetch_load_curve
from ingest.datahub.ratelimit import RateLimiter
from ingest.models import DataHubConnector, DataHubPull
from mdms.core.localtime import local_midnight
from mdms.core.models import Meter
from mdms.core.reading_quality import SOURCE_DATAHUB

log = logging.getLogger(__name__)

# A pull in flight for longer than this was abandoned by a worker that died: with the default
# settings a pull lasts at most 5 attempts x (30 s timeout + 120 s wait), under 13 minutes.
STALE_AFTER = dt.timedelta(hours=1)


class PullBusy(Exception):
    """Another pull of the same connector is in flight; this one was not started."""


def _begin(connector: DataHubConnector, start: dt.date, end: dt.date, trigger: str) -> DataHubPull:
    def create() -> DataHubPull:
        with transaction.atomic():
            return DataHubPull.objects.create(
                connector=connector,
                start_day=start,
                end_day=end,
                trigger=trigger,
                status=DataHubPull.Status.RUNNING,
                started_at=dt.datetime.now(tz=dt.UTC),
            )

    try:
        return create()
    except IntegrityError:
        pass
    abandoned = DataHubPull.objects.filter(
        connector=connector, status__in=DataHubPull.IN_FLIGHT, started_at__lt=dt.datetime.now(tz=dt.UTC) - STALE_AFTER
    ).update(
        status=DataHubPull.Status.ERROR,
        finished_at=dt.datetime.now(tz=dt.UTC),
        error=f"abandoned: still in flight after {STALE_AFTER} (the worker stopped)",
    )
    if abandoned:
        try:
            return create()
        except IntegrityError:
            pass
    raise PullBusy(f"a pull of {connector.meter.serial} is already in flight")


def _finish(pull: DataHubPull, status: str, **fields: object) -> DataHubPull:
    DataHubPull.objects.filter(pk=pull.pk).update(status=status, finished_at=dt.datetime.now(tz=dt.UTC), **fields)
    pull.refresh_from_db()
    return pull


def _record_retry(pull: DataHubPull) -> Callable[[Retry], None]:
    def record(retry: Retry) -> None:
        DataHubPull.objects.filter(pk=pull.pk).update(
            status=DataHubPull.Status.RETRYING,
            attempts=retry.attempt,
            http_status=retry.http_status,
            error=f"attempt {retry.attempt}: {retry.reason}; retrying in {retry.wait_s:.1f} s",
        )

    return record


def datahub_pull(
    *,
    connector: DataHubConnector,
    start: dt.date,
    end: dt.date,
    trigger: str,
    policy: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DataHubPull:
    """Pull the local days start <= day < end for the connector; the finished pull record.

    Raises PullBusy when another pull of the connector is in flight (nothing is recorded then).
    """
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    pull = _begin(connector, start, end, trigger)
    meter = connector.meter
    if meter.status not in Meter.ACCEPTING_STATUSES:
        return _finish(pull, DataHubPull.Status.ERROR, error=f"meter {meter.serial} is {meter.status}: not pulled")
    request = LoadCurveRequest(
        base_url=connector.base_url,
        path=connector.path,
        token=connector.token,
        usage_point_id=connector.usage_point_id,
        start=start,
        end=end,
    )
    try:
        try:
            answer = fetch_load_curve(
                request,
                policy=policy or RetryPolicy.from_settings(),
                limiter=limiter or RateLimiter(),
                sleep=sleep,
                on_retry=_record_retry(pull),
            )
        except HubError as exc:
            return _finish(
                pull, DataHubPull.Status.ERROR, attempts=exc.attempts, http_status=exc.http_status, error=exc.message
            )
        done = {"attempts": answer.attempts, "http_status": answer.http_status}
        try:
            readings = answers.load_curve(
                answer.body,
                usage_point_id=connector.usage_point_id,
                start=local_midnight(start),
                end=local_midnight(end),
                now=dt.datetime.now(tz=dt.UTC),
            )
        except answers.BodyError as exc:
            return _finish(pull, DataHubPull.Status.ERROR, error=exc.message, **done)
        batch = pipeline.Batch()
        pipeline.add_parsed(
            parsing.Parsed(readings=readings),
            batch,
            meter_pk=meter.pk,
            received_at=dt.datetime.now(tz=dt.UTC),
            origin=SOURCE_DATAHUB,
        )
        pipeline.flush(batch, pipeline.Watermarks(), live=False)
    except Exception as exc:
        # MongoDB or Redis failed: the record must not stay "running" for an hour. Nothing is lost:
        # the days stay unpulled, the next run asks again, and the dedupe absorbs what was stored.
        _finish(pull, DataHubPull.Status.ERROR, error=f"could not store the answer: {type(exc).__name__}: {exc}"[:1000])
        raise
    last_day = end - dt.timedelta(days=1)
    DataHubConnector.objects.filter(pk=connector.pk).filter(
        Q(last_success_day__isnull=True) | Q(last_success_day__lt=last_day)
    ).update(last_success_day=last_day)
    log.info("data hub pull of %s %s..%s: %d readings", meter.serial, start, end, len(readings))
    return _finish(
        pull,
        DataHubPull.Status.OK,
        error="",
        readings_received=len(readings),
        readings_stored=batch.counts["stored"],
        duplicates=batch.counts["duplicates"],
        **done,
    )
