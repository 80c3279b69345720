"""The MQTT consumer: persistent session, its own or a shared subscription, acknowledge after storing.

paho's network thread only puts messages on a queue (the callback is thin). The consuming thread
takes them into a batch, flushes the batch by size or age through ingest.pipeline, and only then
acknowledges its messages, in the order received (MQTT 5, 4.6). A worker killed between receive
and acknowledge leaves the messages in its broker session, which redelivers them when the same
client id reconnects; the pipeline's dedupe and the deduping reads make that harmless.

The subscription (settings.INGEST_SHARE_GROUP) is the worker's own by default: Mosquitto 2.0 writes
it to its database with the session and restores it at a restart, so the broker keeps queueing
what meters send for the session from the moment it is back. A shared subscription
($share/<group>/...) lets several workers split the stream, but Mosquitto 2.0 does not write it to
its database (persist__subs_save walks a topic's ordinary subscribers, never its shared ones): after
a broker restart the group is empty until the workers subscribe again, and what meters send in
between is answered "no matching subscribers" and dropped (docs/reliability.md, section 3).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from django import db
from django.conf import settings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest import pipeline
from mdms.core.mqtt import client as mqtt_client
from mdms.core.mqtt import topics

log = logging.getLogger(__name__)

# The broker keeps the session (subscriptions and unacknowledged messages) this long after a
# disconnect: long enough for a deploy or a crash-restart, short enough not to hoard a dead worker's
# backlog forever.
SESSION_EXPIRY_S = 3600
# A batch is written when it holds this many readings...
BATCH_READINGS = 10_000
# ...or this many messages. The broker stops sending beyond max_inflight_messages unacknowledged
# (10,000 in scripts/services.py and deploy/mosquitto); a batch being written and the next one
# being filled share that window, so each gets half of it and the broker never waits for a whole
# batch to be stored. Large batches matter most for one reading per message: each reading then
# lands in a bucket of its own, and MongoDB writes 500 such readings at a time 20-30 % slower per
# reading than 5,000. With a broker's default window (20), batches go by time, not size: raise it.
BATCH_MESSAGES = 5000
# Batches written by the flusher thread while the consuming thread fills the next one: one waiting
# at most, so a slow MongoDB slows the consumer (and the broker) instead of piling batches up.
FLUSH_QUEUE = 1
# ...or when its first message has waited this long (the latency a dashboard sees).
FLUSH_INTERVAL_S = 0.2
# After MongoDB or Redis fails, retry the same batch after this pause (nothing is acknowledged).
RETRY_PAUSE_S = 2.0
# On shutdown, keep draining what already arrived for at most this long.
STOP_DRAIN_S = 5.0


def default_client_id() -> str:
    """Stable per worker, so that a restart resumes the same broker session."""
    return (
        os.environ.get("INGEST_CLIENT_ID")
        or getattr(settings, "INGEST_CLIENT_ID", "")
        or f"ingest-{socket.gethostname()}"
    )


class IngestWorker:
    def __init__(
        self,
        *,
        client_id: str | None = None,
        batch_readings: int = BATCH_READINGS,
        batch_messages: int = BATCH_MESSAGES,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        session_expiry_s: int = SESSION_EXPIRY_S,
        share_group: str | None = None,
    ) -> None:
        self.client_id = client_id or default_client_id()
        # None: settings.INGEST_SHARE_GROUP; "" subscribes alone, a name joins that shared group.
        self.share_group = settings.INGEST_SHARE_GROUP if share_group is None else share_group
        self.batch_readings = batch_readings
        self.batch_messages = batch_messages
        self.flush_interval_s = flush_interval_s
        self.session_expiry_s = session_expiry_s
        self.stopping = threading.Event()
        self.meters = pipeline.MeterCache(stopping=self.stopping)
        self.watermarks = pipeline.Watermarks()
        # SimpleQueue: its put (paho's thread, once per message) is a few C calls, not a lock and a condition.
        self.inbox: queue.SimpleQueue[pipeline.Message] = queue.SimpleQueue()
        self.subscribed = threading.Event()
        self.unsubscribed = threading.Event()
        self._left_group = False
        # Messages were left unacknowledged on the way out: the session must outlive us to redeliver them.
        self._keep_session = False
        self.client: mqtt_client.BulkReceiveClient | None = None
        self._stop_at = 0.0
        self._flushes: queue.Queue[pipeline.Batch | None] = queue.Queue(maxsize=FLUSH_QUEUE)

    # paho callbacks (network thread): thin.

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            log.error("ingest %s: broker refused the connection: %s", self.client_id, reason)
            return
        log.info("ingest %s connected (session present: %s)", self.client_id, flags.session_present)
        # Subscribing again on a resumed session is harmless, covers an expired one, and puts a shared
        # subscription back after a broker restart (Mosquitto 2.0 does not restore those).
        client.subscribe([(topics.inbound(kind, self.share_group), 1) for kind in topics.INBOUND])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            log.error("ingest %s: subscription refused: %s", self.client_id, reasons)
            return
        self.subscribed.set()

    def _on_unsubscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        self.unsubscribed.set()

    def _on_raw_publish(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        # Runs once per message on paho's thread: one object and one put, nothing more.
        self.inbox.put(pipeline.Message(topic, payload, dt.datetime.now(tz=dt.UTC), mid, qos))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # A PUBLISH with properties (the client hands the others to _on_raw_publish).
        self._on_raw_publish(message.topic, bytes(message.payload), message.mid, message.qos)

    # Lifecycle.

    def connect(self) -> None:
        username, password = mqtt_client.ingest_credentials()
        self.client = mqtt_client.new_bulk_client(
            client_id=self.client_id,
            username=username,
            password=password,
            clean_start=False,
            session_expiry_s=self.session_expiry_s,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_raw_publish = self._on_raw_publish
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        mqtt_client.connect(self.client)
        self.client.loop_start()

    def stop(self) -> None:
        """Ask the consuming loop to flush what it holds and disconnect (from any thread)."""
        self._stop_at = time.monotonic()
        self.stopping.set()

    def _stop_deadline(self) -> float:
        return self._stop_at + STOP_DRAIN_S

    def run(self) -> None:
        """Connect, consume until stop(), then flush, acknowledge and disconnect."""
        self.connect()
        # Parsing (this thread) and storing (the flusher) overlap: MongoDB and Redis release the GIL
        # while they wait, which is most of a flush.
        flusher = threading.Thread(target=self._flush_loop, name=f"{self.client_id}-flusher", daemon=True)
        flusher.start()
        try:
            self.consume()
        finally:
            # Every batch handed over is stored and acknowledged (or, when stopping during an
            # outage, left unacknowledged) before the session ends.
            self._flushes.put(None)
            flusher.join()
            assert self.client is not None
            # In a shared group, everything received is stored and acknowledged, and the group no
            # longer routes to us: end the session, so that the broker does not keep queueing a
            # share of the stream for a worker that may never come back (a crash skips this and
            # keeps the session, so the restarted worker gets its unacknowledged messages again).
            # Alone, the session stays: what meters send until the next start waits in it.
            goodbye = Properties(PacketTypes.DISCONNECT)
            goodbye.SessionExpiryInterval = 0
            end_session = self.share_group and self._left_group and not self._keep_session
            self.client.disconnect(properties=goodbye if end_session else None)
            self.client.loop_stop()
            db.connections.close_all()  # this thread's connections; the process may go on

    def leave_group(self, timeout_s: float = 5.0) -> None:
        """Stop the shared subscription routing messages to this worker (on a graceful stop).

        A worker subscribed alone keeps its subscription and session instead: the broker queues what
        meters send while it is away (a deploy, a restart) and hands it over when it comes back.
        """
        if self._left_group:
            return
        self._left_group = True
        if self.client is None or not self.share_group:  # never connected, or nothing to leave
            return
        self.unsubscribed.clear()
        self.client.unsubscribe([topics.shared(kind, self.share_group) for kind in topics.INBOUND])
        if not self.unsubscribed.wait(timeout_s):
            log.warning("ingest %s: no UNSUBACK within %.0f s; stopping anyway", self.client_id, timeout_s)

    def consume(self) -> None:
        batch = pipeline.Batch()
        while True:
            if self.stopping.is_set() and not self._left_group:
                # What arrives until the UNSUBACK is still drained, stored and acknowledged below.
                self.leave_group()
            timeout = self.flush_interval_s
            if batch.messages:
                timeout = max(0.0, self.flush_interval_s - (time.monotonic() - batch.started))
            try:
                message = self.inbox.get(timeout=timeout)
            except queue.Empty:
                message = None
            if message is not None:
                if not batch.messages:
                    batch = pipeline.Batch()  # the latency clock starts at the first message
                try:
                    pipeline.process_message(message, batch, self.meters)
                except pipeline.RegistryUnavailable:
                    # Stopping while PostgreSQL is down: the batch in hand stays unacknowledged (the
                    # next session gets it again); those handed over before are stored and acknowledged.
                    self._keep_session = True
                    return
            full = len(batch.readings) >= self.batch_readings or len(batch.messages) >= self.batch_messages
            due = batch.messages and time.monotonic() - batch.started >= self.flush_interval_s
            if full or due or (self.stopping.is_set() and batch.messages and self.inbox.empty()):
                self._flushes.put(batch)
                batch = pipeline.Batch()
            # On stop, drain what already arrived, but under a steady stream stop anyway after a
            # while: what is left unacknowledged is redelivered to the next session.
            drained = self.inbox.empty() or time.monotonic() > self._stop_deadline()
            if self.stopping.is_set() and self._left_group and not batch.messages and drained:
                return

    def _flush_loop(self) -> None:
        """The flusher thread: store and acknowledge the batches in the order they were handed over."""
        while (batch := self._flushes.get()) is not None:
            self.flush_and_ack(batch)

    def flush_and_ack(self, batch: pipeline.Batch) -> None:
        """Store the batch (retrying while MongoDB or Redis is down), then acknowledge it."""
        while True:
            try:
                pipeline.flush(batch, self.watermarks)
                break
            except Exception:  # a storage outage must not kill the worker nor lose the batch
                log.exception("ingest %s: storing a batch of %d messages failed; retrying", self.client_id, len(batch))
                if self.stopping.wait(RETRY_PAUSE_S):
                    # Shutting down without storing: leave the messages unacknowledged for redelivery.
                    return
        assert self.client is not None
        # In the order received; QoS 1 (all the subscription asks for) as one write.
        self.client.ack_many([message.mid for message in batch.messages if message.qos == 1])
        for message in batch.messages:
            if message.qos == 2:
                self.client.ack(message.mid, message.qos)
