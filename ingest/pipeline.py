"""The ingest's real work, as plain functions and small classes the tests call directly.

A message goes through `process_message` into a Batch (parsed documents plus dead letters); `flush`
writes the batch to MongoDB, skipping exact duplicates it can see cheaply, and counts it in Redis.
The MQTT consumer (ingest.worker) and the importer (import_readings) both sit on top of this.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, close_old_connections, connection

from ingest import counters, parsing
from ingest.parsing import Reason, Rejection
from mdms.core import stored_batches
from mdms.core.models import Meter
from mdms.core.mqtt import topics
from mdms.core.reading_quality import SOURCE_MQTT, SOURCE_ON_DEMAND
from mdms.core.timeseries import readings as store

log = logging.getLogger(__name__)

# While PostgreSQL is down, the meter registry is tried again after this pause.
REGISTRY_RETRY_S = 2.0


@dataclass(frozen=True)
class MeterRef:
    pk: int
    accepting: bool  # registered or active; disabled and removed meters' data is refused
    # A meter removed at a known moment still has its late data from before it accepted; one put
    # in by an exchange has nothing from before it (the old meter's time). None: no such bound.
    removed_at: dt.datetime | None = None
    installed_at: dt.datetime | None = None

    def admits(self, ts: dt.datetime) -> Rejection | None:
        """Why a reading or event with this (interval end) time cannot be this meter's, or None."""
        if self.removed_at is not None and ts > self.removed_at:
            return Rejection(
                Reason.AFTER_REMOVAL, f"{ts.isoformat()} is after the meter's removal at {self.removed_at.isoformat()}"
            )
        if self.installed_at is not None and ts <= self.installed_at:
            return Rejection(
                Reason.BEFORE_INSTALLATION,
                f"{ts.isoformat()} is not after the meter's installation at {self.installed_at.isoformat()}",
            )
        return None


class MeterCache:
    """Serial -> meter, from Postgres, refreshed every refresh_s and (rate-limited) on a miss.

    A miss refreshes at most every miss_refresh_s, so that a flood from an unknown serial does not
    turn into a flood of queries, while a just-registered meter is known within seconds.
    """

    def __init__(
        self, *, refresh_s: float = 30.0, miss_refresh_s: float = 2.0, stopping: threading.Event | None = None
    ) -> None:
        self.refresh_s = refresh_s
        self.miss_refresh_s = miss_refresh_s
        self._meters: dict[str, MeterRef] = {}
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()
        self._stopping = stopping or threading.Event()

    def refresh(self) -> None:
        # A long-lived worker's connection may have been dropped by the server since the last
        # refresh. Inside a transaction (a caller's, or a test's) the connection is in use: keep it.
        if not connection.in_atomic_block:
            close_old_connections()
        rows = Meter.objects.values_list("serial", "pk", "status", "removed_at", "installed_at")
        self._meters = {
            serial: MeterRef(
                pk,
                status in Meter.ACCEPTING_STATUSES,
                # A removed meter with a removal moment is heard for its data from before it.
                removed_at if status == Meter.Status.REMOVED else None,
                installed_at,
            )
            for serial, pk, status, removed_at, installed_at in rows
        }
        self._loaded_at = time.monotonic()

    def lookup(self, serial: str) -> MeterRef | None:
        """The meter of this serial, or None if the registry has none.

        While PostgreSQL is down, the meters already known go on with what was last read (their
        readings keep being stored); a serial not known yet cannot be judged, so the lookup waits
        for the registry, holding its message (and those after it) unacknowledged. Raises
        RegistryUnavailable only when the worker stops during the wait.
        """
        with self._lock:
            age = time.monotonic() - self._loaded_at
            if age >= self.refresh_s or (serial not in self._meters and age >= self.miss_refresh_s):
                self._refresh_through_outage(must_know=serial not in self._meters)
            return self._meters.get(serial)

    def _refresh_through_outage(self, *, must_know: bool) -> None:
        while True:
            try:
                self.refresh()
                return
            except DatabaseError as exc:
                if not must_know and self._meters:
                    log.warning(
                        "meter registry unavailable (%s); going on with the %d meters known", exc, len(self._meters)
                    )
                    # Try again after the short pause, not after a whole refresh period.
                    self._loaded_at = time.monotonic() - self.refresh_s + REGISTRY_RETRY_S
                    return
                log.warning("meter registry unavailable (%s); holding messages until it is back", exc)
                if self._stopping.wait(REGISTRY_RETRY_S):
                    raise RegistryUnavailable(str(exc)) from exc


class RegistryUnavailable(Exception):
    """PostgreSQL (the meter registry) is down and the worker is stopping: leave the message unacknowledged."""


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    received_at: dt.datetime
    mid: int = 0
    qos: int = 0


@dataclass
class Batch:
    messages: list[Message] = field(default_factory=list)
    readings: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    # Flush attempts so far: a retried batch may have been stored, in part or whole, by an attempt
    # whose hand-off to Redis then failed.
    attempts: int = 0

    def __len__(self) -> int:
        return len(self.messages)

    def dead_letter(self, message: Message, rejection: Rejection, *, serial: str | None, element: Any = None) -> None:
        self.dead_letters.append(
            store.dead_letter_document(
                topic=message.topic,
                payload=message.payload,
                received_at=message.received_at,
                reason_code=rejection.code,
                reason=rejection.message,
                serial=serial,
                element=element,
            )
        )
        self.reasons[str(rejection.code)] += 1


def process_message(message: Message, batch: Batch, meters: MeterCache, *, now: dt.datetime | None = None) -> None:
    """Parse one message into the batch. What cannot be used becomes a dead letter; raises only
    RegistryUnavailable (the worker stops while PostgreSQL is down)."""
    now = now or dt.datetime.now(tz=dt.UTC)
    batch.messages.append(message)
    batch.counts["received"] += 1
    serial: str | None = None
    try:
        parsed_topic = topics.parse(message.topic)
        if parsed_topic is None or parsed_topic[1] not in topics.INBOUND:
            raise Rejection(Reason.UNKNOWN_TOPIC, f"{message.topic[:100]!r} is not a meter-to-MDMS topic")
        serial, kind = parsed_topic
        meter = meters.lookup(serial)
        if meter is None:
            raise Rejection(Reason.UNKNOWN_METER, f"no meter {serial!r} in the registry")
        if not meter.accepting and meter.removed_at is None:
            raise Rejection(Reason.DISABLED_METER, f"meter {serial!r} is disabled or removed")
        if kind is topics.Kind.READINGS:
            _add_readings(message, batch, meter, serial, now)
        elif kind is topics.Kind.EVENTS:
            event = parsing.parse_event(message.payload, now=now)
            refused = meter.admits(event.ts)
            if refused is not None:
                raise refused
            batch.events.append(
                {
                    "meter": meter.pk,
                    "ts": event.ts,
                    "type": event.type,
                    "detail": event.detail,
                    "received_at": message.received_at,
                }
            )
        else:
            if not meter.accepting:
                raise Rejection(Reason.DISABLED_METER, f"meter {serial!r} is removed: it answers no commands")
            reply = parsing.parse_reply(message.payload, now=now)
            if reply.readings is not None:
                parsed = reply.readings
                if meter.removed_at is not None or meter.installed_at is not None:
                    parsed = admitted(parsed, meter)
                add_parsed(parsed, batch, meter_pk=meter.pk, received_at=message.received_at, origin=SOURCE_ON_DEMAND)
                for rejection, element in parsed.rejections:
                    batch.dead_letter(message, rejection, serial=serial, element=element)
            batch.replies.append(
                {
                    "meter": meter.pk,
                    "id": reply.id,
                    "ts": reply.ts,
                    "register_import_kwh": reply.register_import_kwh,
                    "register_export_kwh": reply.register_export_kwh,
                    "status": reply.status,
                    **reply.extras(),
                    "received_at": message.received_at,
                }
            )
    except Rejection as rejection:
        batch.dead_letter(message, rejection, serial=serial)
    except RegistryUnavailable:
        raise  # not the message's fault: it stays unacknowledged, for the next session
    except Exception as exc:  # a message we fail to understand must not stop the worker
        log.exception("unexpected error on a message from %s", message.topic)
        batch.dead_letter(message, Rejection(Reason.BAD_SHAPE, f"unexpected {type(exc).__name__}"), serial=serial)


def _add_readings(message: Message, batch: Batch, meter: MeterRef, serial: str, now: dt.datetime) -> None:
    parsed = parsing.parse_readings(message.payload, serial=serial, now=now)
    if meter.removed_at is not None or meter.installed_at is not None:
        parsed = admitted(parsed, meter)
    add_parsed(parsed, batch, meter_pk=meter.pk, received_at=message.received_at)
    for rejection, element in parsed.rejections:
        batch.dead_letter(message, rejection, serial=serial, element=element)


def admitted(parsed: parsing.Parsed, meter: MeterRef) -> parsing.Parsed:
    """The readings inside the meter's installation; the others become rejections, one each."""
    kept = parsing.Parsed(rejections=list(parsed.rejections))
    for reading in parsed.readings:
        refused = meter.admits(reading.ts)
        if refused is None:
            kept.readings.append(reading)
        else:
            kept.rejections.append((refused, {"ts": reading.ts.isoformat(), **reading.values}))
    return kept


def add_parsed(
    parsed: parsing.Parsed, batch: Batch, *, meter_pk: int, received_at: dt.datetime, origin: str = SOURCE_MQTT
) -> None:
    """Add parsed readings to the batch; `origin` is the door they came in by (reading_quality.SOURCES)."""
    batch.counts["readings_received"] += len(parsed.readings)
    for reading in parsed.readings:
        batch.readings.append(
            store.reading_document(
                meter_pk=meter_pk,
                ts=reading.ts,
                received_at=received_at,
                values=reading.values,
                interval_s=reading.interval_s,
                origin=origin,
                quality=reading.quality,
            )
        )


class Watermarks:
    """Per meter, the newest reading time this process knows to be stored.

    A reading after it cannot be a copy of a stored one (a cheap check); one at or before it is
    looked up in MongoDB. Seeded from MongoDB the first time a meter is seen, so a restarted
    worker still recognises the redelivered tail of its previous session.
    """

    def __init__(self) -> None:
        self._newest: dict[int, dt.datetime | None] = {}

    def newest(self, meter_pks: set[int]) -> dict[int, dt.datetime | None]:
        unknown = meter_pks - self._newest.keys()
        if unknown:
            found = store.newest_ts_by_meter(unknown)
            for pk in unknown:
                self._newest[pk] = found.get(pk)
        return {pk: self._newest[pk] for pk in meter_pks}

    def advance(self, meter_pk: int, ts: dt.datetime) -> None:
        current = self._newest.get(meter_pk)
        if current is None or ts > current:
            self._newest[meter_pk] = ts


def dedupe(readings: list[dict[str, Any]], watermarks: Watermarks) -> tuple[list[dict[str, Any]], int, int]:
    """(readings to store, exact duplicates dropped, conflicting duplicates kept)."""
    duplicates = conflicts = 0
    newest = watermarks.newest({doc["meter"] for doc in readings})
    # Readings at or before the watermark may be stored already: one lookup for all of them.
    suspects: dict[int, list[dt.datetime]] = {}
    for doc in readings:
        mark = newest[doc["meter"]]
        if mark is not None and doc["ts"] <= mark:
            suspects.setdefault(doc["meter"], []).append(doc["ts"])
    stored = store.stored_copies(suspects) if suspects else {}
    keep: list[dict[str, Any]] = []
    # A key met once in the batch and not stored (nearly all of them) costs one dict entry; the
    # values of its copies are computed only when a second copy turns up.
    first: dict[tuple[int, dt.datetime], dict[str, Any]] = {}
    copies: dict[tuple[int, dt.datetime], list[dict[str, Any]]] = {}
    for doc in readings:
        key = (doc["meter"], doc["ts"])
        if key not in first and key not in stored:
            first[key] = doc
            keep.append(doc)
            continue
        known = copies.get(key)
        if known is None:
            known = copies[key] = list(stored.get(key, []))
            if key in first:
                known.append(store.measured(first[key]))
        values = store.measured(doc)
        if values in known:
            duplicates += 1
            continue
        if known:
            conflicts += 1
        known.append(values)
        first.setdefault(key, doc)
        keep.append(doc)
    return keep, duplicates, conflicts


def flush(batch: Batch, watermarks: Watermarks, *, live: bool = True, hand_on: bool = True) -> None:
    """Write the batch to MongoDB, then count it and hand its bounds on. Raises if MongoDB fails,
    in which case nothing may be acknowledged and the same batch is flushed again.

    live=False (historical import) keeps the batch out of the live ingest counters, whose lag
    would otherwise show years; its bounds are still handed on, since rollups must recompute.
    hand_on=False keeps them from the followers too: for a bulk load that does the followers' work
    itself, over whole ranges (the simulator's history, ingest.simulator.history).
    """
    batch.attempts += 1
    readings, duplicates, conflicts = dedupe(batch.readings, watermarks)
    stored = store.insert_readings(readings)
    events = store.insert_events(batch.events)
    replies, reply_duplicates = store.insert_replies(batch.replies)
    dead = store.insert_dead_letters(batch.dead_letters)
    for doc in readings:
        watermarks.advance(doc["meter"], doc["ts"])
    now = dt.datetime.now(tz=dt.UTC)
    batch.counts.update(
        {
            "stored": stored,
            "events_stored": events,
            "replies_stored": replies,
            "dead_lettered": dead,
            "duplicates": duplicates + reply_duplicates,
            "conflicting_duplicates": conflicts,
        }
    )
    # The counters and the stored-batch entries go to Redis together: one round trip per batch.
    pipe = stored_batches.connection().pipeline(transaction=False)
    if live:
        counters.record_batch(
            pipe,
            counts=batch.counts,
            reasons=batch.reasons,
            latency_ms=(time.monotonic() - batch.started) * 1000,
            newest_ts=max((doc["ts"] for doc in readings), default=None),
            now=now,
        )
    # A retried batch hands on all its readings: those an earlier attempt stored are now skipped as
    # duplicates, yet the followers may never have heard of them (MongoDB stored them, then the
    # attempt failed, at MongoDB's acknowledgement during a failover or at Redis).
    handed = batch.readings if batch.attempts > 1 else readings
    for kind, docs in (("readings", handed), ("events", batch.events)):
        if docs and hand_on:
            stored_batches.publish_stored(kind, docs, pipe=pipe)
    pipe.execute()
