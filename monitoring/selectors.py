"""Reads for dashboards and the API: who is out, incidents, silent meters, anomalies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from django.conf import settings
from django.db.models import Min, Q, QuerySet

from mdms.core import stored_batches
from mdms.core.models import Feeder, Meter, Region
from mdms.core.timeseries import anomalies as store
from monitoring.detection import ALERTING, SEVERITIES
from monitoring.models import MOMENTARY_LIMIT, IncidentMeter, OutageIncident

# The outage follower's consumer group of the stored-batches stream (monitoring.outages uses it).
OUTAGES_GROUP = "outages"

# "Active" anomalies are those of the last day.
ACTIVE_WINDOW = dt.timedelta(hours=24)


def meters_out_now() -> QuerySet[IncidentMeter]:
    """Who is out right now, with their premise, feeder and incident."""
    return (
        IncidentMeter.objects.filter(restored_at__isnull=True)
        .select_related("meter__premise__feeder__region", "incident")
        .order_by("out_since")
    )


def incidents(
    *,
    status: str | None = None,
    feeder_pk: int | None = None,
    region_pk: int | None = None,
    started_from: dt.datetime | None = None,
    started_before: dt.datetime | None = None,
) -> QuerySet[OutageIncident]:
    """Outage incidents, newest first; filters on status, feeder, region and start in [from, before)."""
    # The feeder's region too: a list shows it where the incident has no region of its own (one query a row, else).
    queryset = OutageIncident.objects.select_related("feeder__region", "region")
    if status:
        queryset = queryset.filter(status=status)
    if feeder_pk is not None:
        queryset = queryset.filter(feeder_id=feeder_pk)
    if region_pk is not None:
        queryset = queryset.filter(Q(region_id=region_pk) | Q(feeder__region_id=region_pk))
    if started_from is not None:
        queryset = queryset.filter(started_at__gte=started_from)
    if started_before is not None:
        queryset = queryset.filter(started_at__lt=started_before)
    return queryset.order_by("-started_at", "-pk")


def silence_now(*, wall: dt.datetime | None = None) -> dt.datetime:
    """The time silence is measured against: the stream's own, not the wall clock.

    While the outage follower has entries left to apply (a backlog being replayed, months old or
    seconds), it is the newest reading or event time it has applied: a meter whose readings are
    still in the backlog is not silent. Once it has applied everything, the clock goes on with the
    wall time since (when nothing at all is heard, silence still grows). Before the follower applied
    anything, the wall clock.
    """
    wall = wall or dt.datetime.now(tz=dt.UTC)
    clock = store.stream_clock()
    if clock is None:
        return wall
    newest, applied_at = clock
    if _outages_behind():
        return min(wall, newest)
    return min(wall, newest + max(dt.timedelta(0), wall - applied_at))


def _entry_id(entry_id: str) -> tuple[int, int]:
    millis, _dash, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _outages_behind() -> bool:
    """Whether the outage follower has stream entries not yet applied (taken and pending, or not yet
    taken). Compared by entry ids: XINFO's `lag` is not always known (Redis answers null at times)."""
    client = stored_batches.connection()
    try:
        stream: Any = client.xinfo_stream(stored_batches.STREAM)
        groups: Any = client.xinfo_groups(stored_batches.STREAM)
    except redis.ResponseError:  # no stream yet: nothing stored, nothing behind
        return False
    for group in groups:
        if group["name"] == OUTAGES_GROUP:
            if int(group.get("pending") or 0):
                return True
            return _entry_id(str(group["last-delivered-id"])) < _entry_id(str(stream["last-generated-id"]))
    return int(stream.get("length") or 0) > 0  # the follower has not started: all of it is ahead


# The shortest reporting interval a meter may have: no meter is silent before it is this far past its slack.
SHORTEST_INTERVAL = dt.timedelta(seconds=60)


def silence_slack(*, span: dt.timedelta, behind: dt.timedelta, interval: dt.timedelta) -> dt.timedelta:
    """How much older than the stream's time a meter's newest reading may be by its own cadence,
    learnt from the message that brought it (`behind` the stream's time when applied).

    A meter publishing each reading as its interval ends has none: MONITORING_SILENT_INTERVALS is its
    whole allowance. A meter publishing blocks (a day of 96 quarter-hours in one message) has the
    span its message covered (newest minus oldest reading, 23:45) plus how far behind the stream's
    time that message came, at most one message more (span + one interval): a meter that sends each
    day's block an hour after midnight, or whose replayed block came after another meter's next day,
    is not silent for it; one whose next block is overdue beyond that is.
    """
    if span <= dt.timedelta(0):
        return dt.timedelta(0)
    return span + min(max(dt.timedelta(0), behind), span + interval)


def is_silent(*, now: dt.datetime, seen: dt.datetime, slack: dt.timedelta, interval_s: int, missed: int) -> bool:
    """A meter is silent when its newest reading is older than its slack plus `missed` intervals."""
    return now - seen > slack + dt.timedelta(seconds=missed * interval_s)


def overdue_meters(now: dt.datetime) -> dict[int, tuple[dt.datetime, dt.timedelta]]:
    """(newest reading, slack) of the meters that may be silent at `now`: one indexed range query."""
    return store.last_seen_overdue(now - SHORTEST_INTERVAL)


def silent_meters(*, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Active meters whose newest reading is MONITORING_SILENT_INTERVALS intervals older than their
    slack allows, by the stream's time (what the outage follower has applied), as the silent-meter
    check judges them."""
    now = now or silence_now()
    intervals = settings.MONITORING_SILENT_INTERVALS
    # Only meters past their slack by `intervals` of the shortest interval in use can be silent:
    # asking with the 60 s floor returned most of the fleet at a utility's size (100,000 rows a page),
    # since 15-minute meters are always more than a minute quiet.
    shortest = Meter.objects.filter(status=Meter.Status.ACTIVE).aggregate(shortest=Min("interval_s"))["shortest"]
    if shortest is None:
        return []
    overdue = store.last_seen_overdue(now - max(SHORTEST_INTERVAL, dt.timedelta(seconds=intervals * shortest)))
    # Plain rows, not model instances: when a head-end link drops, a whole fleet can be silent at once.
    rows = Meter.objects.filter(pk__in=list(overdue), status=Meter.Status.ACTIVE).values_list(
        "pk", "serial", "interval_s", "premise__feeder__code"
    )
    silent = []
    for pk, serial, interval_s, feeder_code in rows:
        seen, slack = overdue[pk]
        if is_silent(now=now, seen=seen, slack=slack, interval_s=interval_s, missed=intervals):
            silent.append(
                {
                    "meter": pk,
                    "serial": serial,
                    "feeder": feeder_code,
                    "last_reading": seen,
                    "silent_intervals": int((now - seen - slack).total_seconds() // interval_s),
                }
            )
    return sorted(silent, key=lambda row: row["last_reading"])


def active_anomalies(
    *,
    region_pk: int | None = None,
    feeder_pk: int | None = None,
    meter_pk: int | None = None,
    now: dt.datetime | None = None,
    include_info: bool = False,
    limit: int = 500,
) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(tz=dt.UTC)
    return store.anomalies(
        meter_pk=meter_pk,
        feeder_pk=feeder_pk,
        region_pk=region_pk,
        since=now - ACTIVE_WINDOW,
        min_severity=None if include_info else ALERTING,
        limit=limit,
    )


def active_anomalies_named(
    *,
    feeder_code: str | None = None,
    region_code: str | None = None,
    meter_serial: str | None = None,
    include_info: bool = False,
) -> list[dict[str, Any]]:
    """active_anomalies, narrowed by the codes and serials a client knows; an unknown one matches nothing."""
    no_match = -1  # no row has this pk, so an unknown code gives an empty list, not every anomaly

    def pk_of(model: Any, **lookup: str) -> int:
        return int(model.objects.filter(**lookup).values_list("pk", flat=True).first() or no_match)

    return active_anomalies(
        feeder_pk=pk_of(Feeder, code=feeder_code) if feeder_code is not None else None,
        region_pk=pk_of(Region, code=region_code) if region_code is not None else None,
        meter_pk=pk_of(Meter, serial=meter_serial) if meter_serial is not None else None,
        include_info=include_info,
    )


# What anomaly_counts groups by, as the API names it -> the stored document's field.
ANOMALY_GROUPS = {"region": "region", "feeder": "feeder", "meter": "meter_id"}


def anomaly_counts(*, group_by: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Active anomalies counted by "region", "feeder" or "meter_id", per severity."""
    now = now or dt.datetime.now(tz=dt.UTC)
    return store.anomaly_counts(since=now - ACTIVE_WINDOW, group_by=group_by)


def meter_anomaly_history(
    *, meter_pk: int, start: dt.datetime | None = None, end: dt.datetime | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    return store.anomalies(meter_pk=meter_pk, since=start, until=end, limit=limit)


def open_incident_counts(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Open outage incidents by duration class as of now (momentary under 5 minutes, else sustained),
    every class present (for /metrics)."""
    now = now or dt.datetime.now(tz=dt.UTC)
    open_incidents = OutageIncident.objects.filter(status=OutageIncident.Status.OPEN)
    sustained_since = now - MOMENTARY_LIMIT
    return {
        OutageIncident.Duration.MOMENTARY.value: open_incidents.filter(started_at__gt=sustained_since).count(),
        OutageIncident.Duration.SUSTAINED.value: open_incidents.filter(started_at__lte=sustained_since).count(),
    }


def active_anomaly_severity_counts(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Anomalies of the active window (the operator pages' last 24 hours) by severity, every severity present."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for row in anomaly_counts(group_by="region", now=now):
        counts[row["severity"]] = counts.get(row["severity"], 0) + row["count"]
    return counts
