"""Outages: last gasps and silent meters become incidents per feeder; power_on and fresh readings end them.

The beat job `outages_process_pending` follows the stored-batches stream (consumer group
"outages"): events batches bring power_off/power_on, readings batches bring each meter's newest
reading (the last-seen record, and restores). `outages_check_silent` runs on its own tick. A
meter is out in at most one incident at a time (a partial unique index in PostgreSQL), so a
re-run or two runs at once change nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from mdms.core.followers import follower_run
from mdms.core.localtime import local_day
from mdms.core.models import DEFAULT_INTERVAL_S, Customer, Meter
from mdms.core.stored_batches import StoredBatch
from mdms.core.timeseries import anomalies as store
from monitoring import selectors, webhook
from monitoring.models import IncidentMeter, OutageIncident

OUTAGES_GROUP = selectors.OUTAGES_GROUP
# A meter that goes out within this long of an open incident's start on its feeder joins it.
CORRELATION_WINDOW = dt.timedelta(minutes=30)
# Silent meters alone open an incident only when this many on one feeder fall silent together:
# one silent meter is more often a communication fault than an outage.
SILENT_MIN_PER_FEEDER = 2
# Readings travel for a while after their interval ends.
SILENCE_GRACE = dt.timedelta(seconds=60)


def _feeders(meter_pks: Iterable[int]) -> dict[int, tuple[int | None, int | None]]:
    rows = Meter.objects.filter(pk__in=list(meter_pks)).values_list(
        "pk", "premise__feeder_id", "premise__feeder__region_id"
    )
    return {pk: (feeder, region) for pk, feeder, region in rows}


def _refresh_counts(incident: OutageIncident) -> None:
    meter_pks = list(incident.meters.values_list("meter_id", flat=True))
    # The customers living there when it began: an incident of the past (a replayed backlog) counts
    # the people of its own day, not today's.
    day = local_day(incident.started_at)
    # One filter(): the same account must hold the meter and be lived in that day.
    customers = (
        Customer.objects.filter(
            Q(accounts__move_out_date__isnull=True) | Q(accounts__move_out_date__gt=day),
            accounts__premise__meters__in=meter_pks,
            accounts__move_in_date__lte=day,
        )
        .distinct()
        .count()
    )
    incident.affected_meters = len(meter_pks)
    incident.affected_customers = customers
    incident.save(update_fields=["affected_meters", "affected_customers", "updated_at"])


def meters_out(
    *, meter_pks: Sequence[int], at: dict[int, dt.datetime], source: str, touched: dict[int, str]
) -> list[int]:
    """Mark meters out (idempotent); returns those newly out. `touched` collects incident -> event."""
    already = set(
        IncidentMeter.objects.filter(meter_id__in=meter_pks, restored_at__isnull=True).values_list(
            "meter_id", flat=True
        )
    )
    # An outage recorded before, restored since (the same last gasp applied again: a replay, or an
    # entry redone after its follower died) is that outage, not a new one.
    recorded = set(
        IncidentMeter.objects.filter(meter_id__in=meter_pks, out_since__in=set(at.values())).values_list(
            "meter_id", "out_since"
        )
    )
    already |= {pk for pk in meter_pks if (pk, at[pk]) in recorded}
    where = _feeders(meter_pks)
    # A premise the utility cut off on purpose (a completed disconnect command) is not out.
    cut_off = set(
        Meter.objects.filter(pk__in=meter_pks, relay_state=Meter.Relay.DISCONNECTED).values_list("pk", flat=True)
    )
    newly: list[int] = []
    joined: dict[int, OutageIncident] = {}
    for pk in sorted(set(meter_pks) - already - cut_off, key=lambda p: at[p]):
        if pk not in where:
            continue
        feeder_pk, region_pk = where[pk]
        # None matches meters without a premise (IS NULL), grouped as one place.
        place: dict[str, Any] = {"feeder_id": feeder_pk, "region_id": region_pk}
        since = at[pk]
        with transaction.atomic():
            incident = (
                OutageIncident.objects.select_for_update()
                .filter(
                    status=OutageIncident.Status.OPEN,
                    **place,
                    started_at__gte=since - CORRELATION_WINDOW,
                    started_at__lte=since + CORRELATION_WINDOW,
                )
                .order_by("started_at")
                .first()
            )
            if incident is None:
                incident = OutageIncident.objects.create(feeder_id=feeder_pk, region_id=region_pk, started_at=since)
                touched[incident.pk] = "incident.opened"
            try:
                with transaction.atomic():
                    IncidentMeter.objects.create(incident=incident, meter_id=pk, source=source, out_since=since)
            except IntegrityError:  # another run marked it out meanwhile
                continue
            if since < incident.started_at:
                incident.started_at = since
                incident.save(update_fields=["started_at", "updated_at"])
            joined[incident.pk] = incident
            touched.setdefault(incident.pk, "incident.updated")
            newly.append(pk)
    # Counted once per incident, after its meters joined: counting after each meter cost a count of
    # the whole incident per meter (2,616 meters out at once took 133 s).
    for incident in joined.values():
        _refresh_counts(incident)
    return newly


def meters_restore(*, at: dict[int, dt.datetime], by: str, touched: dict[int, str]) -> list[int]:
    """Restore meters out since before the given times; close incidents left with nobody out."""
    restored: list[int] = []
    for row in IncidentMeter.objects.filter(meter_id__in=list(at), restored_at__isnull=True).select_related("incident"):
        when = at[row.meter_id]
        if when <= row.out_since:
            continue  # older news than the outage itself
        updated = IncidentMeter.objects.filter(pk=row.pk, restored_at__isnull=True).update(
            restored_at=when, restored_by=by
        )
        if not updated:
            continue
        restored.append(row.meter_id)
        incident = row.incident
        if not incident.meters.filter(restored_at__isnull=True).exists():
            ended = incident.meters.aggregate(end=Max("restored_at"))["end"]
            incident.ended_at = ended
            incident.status = OutageIncident.Status.CLOSED
            incident.duration_class = incident.classify(ended)
            incident.save(update_fields=["ended_at", "status", "duration_class", "updated_at"])
            touched[incident.pk] = "incident.closed"
        else:
            touched.setdefault(incident.pk, "incident.updated")
    return restored


def _runs(events: Sequence[dict[str, Any]]) -> Iterator[tuple[str, dict[int, dt.datetime]]]:
    """The events as runs of one type with each meter at most once, in time order: a last-gasp
    storm is one batch, and a meter's second event waits for the run after, as if one by one."""
    kind = ""
    at: dict[int, dt.datetime] = {}
    for event in events:
        if event["type"] != kind or event["meter"] in at:
            if at:
                yield kind, at
            kind, at = event["type"], {}
        at[event["meter"]] = event["ts"]
    if at:
        yield kind, at


def outages_apply_events(*, events: Sequence[dict[str, Any]], touched: dict[int, str]) -> None:
    """power_off and power_on events in time order; a meter's latest says where it ends up."""
    heard: dict[int, dt.datetime] = {}
    for kind, at in _runs(events):
        if kind == "power_off":
            meters_out(meter_pks=list(at), at=at, source=IncidentMeter.Source.LAST_GASP, touched=touched)
        else:
            meters_restore(at=at, by="power_on", touched=touched)
            # Heard from: its silence counts from here, not from its last reading before the outage.
            heard.update({pk: max(ts, heard.get(pk, ts)) for pk, ts in at.items()})
    store.last_seen_advance(heard)


def outages_apply_readings(
    *,
    newest: Mapping[int, dt.datetime],
    touched: dict[int, str],
    spans: Mapping[int, dt.timedelta] | None = None,
    clock: dt.datetime | None = None,
) -> None:
    """Each meter's newest reading, with the span of the message that brought it (0 for one reading;
    store.newest_messages_in), applied at the stream's time `clock` (by default the newest of them):
    last seen, with the slack its cadence earns (selectors.silence_slack), and restores."""
    if not newest:
        return
    spans = spans or {}
    clock = clock or max(newest.values())
    interval_of = dict(Meter.objects.filter(pk__in=list(newest)).values_list("pk", "interval_s"))
    slack = {
        pk: selectors.silence_slack(
            span=spans.get(pk, dt.timedelta(0)),
            behind=clock - ts,
            interval=dt.timedelta(seconds=interval_of.get(pk, DEFAULT_INTERVAL_S)),
        )
        for pk, ts in newest.items()
    }
    store.last_seen_advance(newest, slack=slack)
    meters_restore(at=dict(newest), by="reading", touched=touched)


def outages_check_silent(*, now: dt.datetime | None = None) -> dict[int, str]:
    """Silent meters join their feeder's open incident after one missed interval; elsewhere, meters
    silent for MONITORING_SILENT_INTERVALS intervals open an incident when enough fall silent together.

    `now` defaults to the stream's time (selectors.silence_now): while history is replayed, a meter
    whose replayed readings keep coming is not silent however old they are.
    """
    now = now or selectors.silence_now()
    intervals = settings.MONITORING_SILENT_INTERVALS
    # One indexed range query: only the meters a missed interval past their slack are looked at.
    candidates = selectors.overdue_meters(now - SILENCE_GRACE)
    touched: dict[int, str] = {}
    if not candidates:
        return touched
    rows = Meter.objects.filter(pk__in=list(candidates), status=Meter.Status.ACTIVE).values_list(
        "pk", "interval_s", "premise__feeder_id"
    )
    out = set(
        IncidentMeter.objects.filter(meter_id__in=list(candidates), restored_at__isnull=True).values_list(
            "meter_id", flat=True
        )
    )
    open_feeders = set(
        OutageIncident.objects.filter(status=OutageIncident.Status.OPEN).values_list("feeder_id", flat=True)
    )
    by_feeder: dict[int | None, list[int]] = defaultdict(list)
    for pk, interval_s, meter_feeder in rows:
        if pk in out:
            continue
        # Next to an open outage one missed interval is evidence enough (its last gasp was lost);
        # alone, a meter must miss MONITORING_SILENT_INTERVALS, both beyond its own slack.
        needed = 1 if meter_feeder in open_feeders else intervals
        seen, slack = candidates[pk]
        if selectors.is_silent(now=now - SILENCE_GRACE, seen=seen, slack=slack, interval_s=interval_s, missed=needed):
            by_feeder[meter_feeder].append(pk)
    for feeder_pk, pks in by_feeder.items():
        if feeder_pk in open_feeders or len(pks) >= SILENT_MIN_PER_FEEDER:
            # Out since the end of the last interval it reported.
            meters_out(
                meter_pks=pks,
                at={pk: candidates[pk][0] for pk in pks},
                source=IncidentMeter.Source.SILENT,
                touched=touched,
            )
    webhook.incidents_notify(touched)
    return touched


def _apply_round(batches: Sequence[StoredBatch]) -> tuple[int, dict[int, str]]:
    """One round of the outage follower over these stored batches: their power events in time order,
    then each meter's newest reading at the stream's time; notified. Returns (events, incidents touched)."""
    touched: dict[int, str] = {}
    event_ranges = [(b.meter_pks, b.min_ts, b.max_ts) for b in batches if b.kind == "events"]
    reading_ranges = [(b.meter_pks, b.min_ts, b.max_ts) for b in batches if b.kind == "readings"]
    events = store.power_events_in(event_ranges)
    outages_apply_events(events=events, touched=touched)
    messages = store.newest_messages_in(reading_ranges)
    newest = {pk: ts for pk, (ts, _span) in messages.items()}
    heard = [*newest.values(), *(event["ts"] for event in events)]
    if heard:
        store.stream_clock_advance(max(heard), at=dt.datetime.now(tz=dt.UTC))
        # The stream's time with this round applied: how far behind it a meter's message came.
        clock = store.stream_clock()
        outages_apply_readings(
            newest=newest,
            spans={pk: span for pk, (_ts, span) in messages.items()},
            clock=clock[0] if clock else None,
            touched=touched,
        )
    webhook.incidents_notify(touched)
    return len(events), touched


def outages_process_pending(
    *, consumer: str, group: str = OUTAGES_GROUP, count: int = 1000, budget_s: float = 0.0
) -> dict[str, int]:
    """The beat job: apply rounds of up to `count` entries the ingest stored since the last run,
    acknowledging each, until the stream is empty or `budget_s` has passed (one round when 0).

    One run at a time (mdms.core.followers: a Redis lock renewed by a heartbeat, which also keeps
    the entries it took from being claimed by another run while it works).
    """
    started = time.monotonic()
    totals = {"entries": 0, "events": 0, "incidents_touched": 0}
    with follower_run(group, consumer) as run:
        if run is None:
            return {**totals, "skipped": 1}
        while True:
            entries = run.take(count=count)
            if not entries:
                break
            events, touched = _apply_round([batch for _entry_id, batch in entries])
            run.done(entry_id for entry_id, _b in entries)
            totals["entries"] += len(entries)
            totals["events"] += events
            totals["incidents_touched"] += len(touched)
            if time.monotonic() - started >= budget_s:
                break
    return totals


# A replay of history takes each meter's newest reading from this window before its end: the newest
# message of a meter that reports is in it (a daily block at the latest), and the rest is not read.
REPLAY_NEWEST_WINDOW = dt.timedelta(days=2)


def outages_replay(*, meter_pks: Sequence[int], start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """History stored in bulk without the stream (the demo's, ingest.simulator.history): what the
    outage follower would have made of it, in one round. Its power events in time order become
    incidents with their own times (a last gasp opens or joins its feeder's incident, its power_on
    closes it); each meter's newest reading counts as heard from, and moves the stream's time to the
    end of the history. Idempotent: an outage already recorded (a meter out since the same moment)
    is not recorded again, so the same range may be replayed after a restart.
    """
    if not meter_pks or start >= end:
        return {"events": 0, "incidents_touched": 0}
    pks = tuple(sorted(set(meter_pks)))
    events, touched = _apply_round(
        [
            StoredBatch("events", pks, start, end, 0),
            StoredBatch("readings", pks, max(start, end - REPLAY_NEWEST_WINDOW), end, 0),
        ]
    )
    return {"events": events, "incidents_touched": len(touched)}
