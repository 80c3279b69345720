"""Many simulated meters over MQTT from one thread.

Each meter has its own connection and credentials, as a real meter would (clean_start False,
QoS 1). A thread per meter would not reach 10,000 meters, so one selector drives every paho
client through its external-loop API: the socket callbacks register each socket, and
loop_read/loop_write/loop_misc run when the selector says so.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import itertools
import json
import logging
import selectors
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from tqdm import tqdm

from ingest.simulator.faults import Fault, FaultKind, LabelWriter, iso
from ingest.simulator.meter import Emission, SimulatedMeter
from mdms.core.mqtt import client as mqtt_client
from mdms.core.mqtt import topics
from mdms.core.mqtt.topics import Kind

logger = logging.getLogger(__name__)

# A day of 15-minute readings per message in accelerated mode (the contract's interval block).
BLOCK_SIZE = 96
# Persistent sessions keep commands sent while the simulator restarts for an hour.
SESSION_EXPIRY_S = 3600
# Accelerated mode stops generating while this many messages wait for their PUBACK, so memory
# stays flat however long the backfill.
HIGH_WATER = 20_000
LOW_WATER = 5_000
# Real meters do not all report at the same second: each has a fixed offset within this spread.
REALTIME_SPREAD_S = 20.0
RECONNECT_DELAY_S = 5.0
# A new meter from an exchange waits this long before it sends: the ingest learns a new serial within
# seconds (pipeline.MeterCache re-reads the registry at most every 2 s on a miss), and a reading that
# comes before is dead-lettered as unknown. A real meter is commissioned minutes before it reports.
EXCHANGE_SETTLE_S = 5.0


@dataclass(frozen=True)
class MeterLogin:
    """How one meter logs in: a password, or a client certificate and its key (on the TLS listener)."""

    serial: str
    password: str = ""
    certificate_file: str = ""
    key_file: str = ""

    @property
    def uses_certificate(self) -> bool:
        return bool(self.certificate_file)


def read_credentials(path: Path, limit: int | None = None) -> list[MeterLogin]:
    """The rows of a provisioning CSV: a `serial,password` header, and optionally `certificate,key`.

    A row with a certificate (a file path, relative to the CSV's folder or absolute) logs in with it
    on the TLS listener; its password may be empty.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        rows = []
        for row in csv.DictReader(fh):
            if not row.get("serial"):
                continue
            certificate, key = (row.get("certificate") or "").strip(), (row.get("key") or "").strip()
            rows.append(
                MeterLogin(
                    serial=row["serial"].strip(),
                    password=(row.get("password") or "").strip(),
                    certificate_file=str(path.parent / certificate) if certificate else "",
                    key_file=str(path.parent / key) if key else "",
                )
            )
    return rows[:limit] if limit else rows


@dataclass
class Link:
    """One meter's MQTT connection and what the fleet knows about it."""

    meter: SimulatedMeter
    client: mqtt.Client
    connected: bool = False
    subscribed: bool = False  # to its commands: on-demand reads can reach it
    refused: str | None = None
    accepted_once: bool = False  # a CONNACK came at least once
    retry_at: float = 0.0
    # The registers of the newest reading sent, which an on-demand read answers with.
    registers: dict[str, Any] | None = None
    newest_sent: str | None = None  # ts of the newest reading sent


@dataclass
class Stats:
    published: int = 0
    acked: int = 0
    rejected: int = 0  # PUBACK with a failure reason (for instance not authorised)
    commands_answered: int = 0

    @property
    def unacked(self) -> int:
        return self.published - self.acked - self.rejected


class Behaviour(StrEnum):
    """How a simulated meter treats commands (simulate_meters --command-behaviour SERIAL=late)."""

    ANSWER = "answer"  # acknowledge, carry it out, report completion
    REFUSE = "refuse"  # answer "failed" with a reason
    LATE = "late"  # acknowledge at once, complete after LATE_REPLY_S
    NEVER = "never"  # say nothing (the MDMS retries, then the command expires)


# How late a "late" meter completes its commands.
LATE_REPLY_S = 20.0


@dataclass
class Fleet:
    meters: list[SimulatedMeter]
    # serial -> password, or serial -> MeterLogin (a meter with a certificate uses the TLS listener)
    logins: dict[str, str] | dict[str, MeterLogin]
    session_expiry_s: int = SESSION_EXPIRY_S
    stats: Stats = field(default_factory=Stats)
    # Serial -> how that meter treats commands; a meter not named answers.
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    late_reply_s: float = LATE_REPLY_S
    # Does a planned meter exchange through the MDMS (simulate_meters gives core.services.meter_exchange):
    # given the old meter and the exchange, the new meter's login, or None when it could not be done.
    exchanger: Callable[[SimulatedMeter, Fault], MeterLogin | None] | None = None
    links: list[Link] = field(default_factory=list, init=False)
    _later: list[tuple[float, int, Link, dict[str, Any]]] = field(default_factory=list, init=False)
    _later_order: itertools.count[int] = field(default_factory=itertools.count, init=False)
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector, init=False)
    _last_misc: float = field(default=0.0, init=False)

    def connect(self, timeout_s: float = 30.0) -> list[Link]:
        """Open every connection; returns the links the broker accepted (refusals are logged)."""
        for meter in self.meters:
            client = self._new_client(meter.serial)
            # Before any reading goes out, an on-demand read answers with the starting registers.
            link = Link(meter, client, registers=meter.read_registers(dt.datetime.now(tz=dt.UTC)))
            self._wire(link)
            self.links.append(link)
            try:
                mqtt_client.connect(client, keepalive=60)
            except OSError as exc:
                link.refused = f"cannot reach the broker: {exc}"
            self.pump(0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(not (ln.subscribed or ln.refused) for ln in self.links):
            self.pump(0.1)
        for link in self.links:
            if not link.subscribed and not link.refused:
                link.refused = "no CONNACK or SUBACK in time"
            if link.refused:
                logger.warning("meter %s not connected: %s", link.meter.serial, link.refused)
        return self.live

    def __post_init__(self) -> None:
        for meter in self.meters:
            meter.exchanges = self.exchanger is not None

    def advance(
        self, link: Link, start: dt.datetime, end: dt.datetime, labels: LabelWriter, block_size: int = 1
    ) -> tuple[Link, list[Emission]]:
        """What the meter of `link` sends for (start, end], and the link that sends it. Across a planned
        exchange, the old meter's readings up to it are sent (and acknowledged) first, since the exchange
        ends its broker access; then the new meter, on a new link with its own login, goes on."""
        while True:
            emissions, began = link.meter.advance(start, end)
            labels.write(began)
            exchange, link.meter.exchange_due = link.meter.exchange_due, None
            if exchange is None:
                return link, emissions
            self.send(link, emissions, block_size)
            self.drain(timeout_s=30.0)
            successor = self._exchange(link, exchange)
            labels.write([Fault(link.meter.serial, FaultKind.METER_EXCHANGE, exchange.start, exchange.end,
                                {"new_serial": successor.meter.serial if successor else None})])  # fmt: skip
            if successor is not None:
                link = successor
            # else the old meter carries on (the exchange is not offered to it again)

    def _exchange(self, link: Link, exchange: Fault) -> Link | None:
        assert self.exchanger is not None
        try:
            login = self.exchanger(link.meter, exchange)
        except Exception:  # the simulator runs on: the old meter keeps sending, the MDMS refuses it or not
            logger.exception("meter %s: the exchange at %s failed", link.meter.serial, iso(exchange.start))
            login = None
        if login is None:
            return None
        meter = link.meter.successor(login.serial, at=exchange.start)
        self.logins[login.serial] = login  # type: ignore[assignment]
        client = self._new_client(login.serial)
        new = Link(meter, client, registers=meter.read_registers(exchange.start))
        self._wire(new)
        self.links.append(new)
        self.meters.append(meter)
        link.refused = f"exchanged for {login.serial}"  # the broker has ended its access; no reconnecting
        try:
            mqtt_client.connect(client, keepalive=60)
        except OSError as exc:
            new.refused = f"cannot reach the broker: {exc}"
        logger.info("meter %s exchanged for %s at %s", link.meter.serial, login.serial, iso(exchange.start))
        settled = time.monotonic() + EXCHANGE_SETTLE_S
        while time.monotonic() < settled:
            self.pump(0.1)
        return new

    def _new_client(self, serial: str) -> mqtt.Client:
        login = self.logins[serial]
        if isinstance(login, MeterLogin) and login.uses_certificate:
            return mqtt_client.new_certificate_client(
                client_id=serial,
                certificate_file=login.certificate_file,
                key_file=login.key_file,
                clean_start=False,
                session_expiry_s=self.session_expiry_s,
            )
        return mqtt_client.new_client(
            client_id=serial,
            username=serial,
            password=login.password if isinstance(login, MeterLogin) else login,
            clean_start=False,
            session_expiry_s=self.session_expiry_s,
        )

    def uses_certificate(self, serial: str) -> bool:
        login = self.logins[serial]
        return isinstance(login, MeterLogin) and login.uses_certificate

    @property
    def over_tls(self) -> int:
        """How many meters log in with a certificate."""
        return sum(self.uses_certificate(serial) for serial in self.logins)

    @property
    def live(self) -> list[Link]:
        return [link for link in self.links if link.refused is None]

    def _wire(self, link: Link) -> None:
        client = link.client
        client.user_data_set(link)
        # paho tells the external loop when a socket opens or closes and when it has data to write.
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._socket_wants_write
        client.on_socket_unregister_write = self._socket_written
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    def _socket_open(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        self._selector.register(sock, selectors.EVENT_READ, link)

    def _socket_close(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        self._selector.unregister(sock)

    def _socket_wants_write(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, link)

    def _socket_written(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        self._selector.modify(sock, selectors.EVENT_READ, link)

    def _on_connect(self, client: mqtt.Client, link: Link, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            # Wrong credentials or a disabled meter: retrying would only hammer the broker.
            link.refused = str(reason)
            return
        link.connected = True
        link.accepted_once = True
        client.subscribe(topics.topic(link.meter.serial, Kind.COMMANDS), qos=1)

    def _on_subscribe(self, client: mqtt.Client, link: Link, mid: int, reasons: Any, props: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            link.refused = f"may not subscribe to its commands: {reasons}"
        else:
            link.subscribed = True

    def _on_disconnect(self, client: mqtt.Client, link: Link, flags: Any, reason: Any, props: Any) -> None:
        if not link.accepted_once and link.refused is None:
            # Closed before any CONNACK: on the TLS listener, the broker refusing the client
            # certificate (revoked, expired, another CA) looks like this; TLS 1.3 carries no reason.
            link.refused = f"connection closed before the broker accepted it ({reason})"
            return
        link.connected = False
        link.retry_at = time.monotonic() + RECONNECT_DELAY_S

    def _on_publish(self, client: mqtt.Client, link: Link, mid: int, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.stats.rejected += 1
            logger.warning("broker rejected a message from %s: %s", link.meter.serial, reason)
        else:
            self.stats.acked += 1

    def _on_message(self, client: mqtt.Client, link: Link, message: mqtt.MQTTMessage) -> None:
        try:
            command = json.loads(message.payload)
        except ValueError:
            logger.warning("meter %s ignored a command that is not JSON", link.meter.serial)
            return
        if not isinstance(command, dict) or "id" not in command:
            return
        behaviour = self.behaviours.get(link.meter.serial, Behaviour.ANSWER)
        if behaviour is Behaviour.NEVER:
            return
        now = iso(dt.datetime.now(tz=dt.UTC))
        reply_to = {"id": command["id"], "ts": now}
        if behaviour is Behaviour.REFUSE:
            self._publish(link, Kind.REPLIES, {**reply_to, "status": "failed", "reason": "refused by the meter"})
            self.stats.commands_answered += 1
            return
        outcome = self._carry_out(link, command)
        if outcome is None:
            self._publish(link, Kind.REPLIES, {**reply_to, "status": "failed", "reason": "unknown command type"})
            return
        self._publish(link, Kind.REPLIES, {**reply_to, "status": "acknowledged"})
        done = {**reply_to, "status": "completed", **outcome}
        if behaviour is Behaviour.LATE:
            heapq.heappush(self._later, (time.monotonic() + self.late_reply_s, next(self._later_order), link, done))
        else:
            self._publish(link, Kind.REPLIES, done)
        self.stats.commands_answered += 1

    def _carry_out(self, link: Link, command: dict[str, Any]) -> dict[str, Any] | None:
        """Do what the command asks; what the completion reply says, or None for a kind not known."""
        kind = command.get("type")
        if kind == "read":
            return self.registers(link)
        if kind == "disconnect":
            link.meter.relay_connected = False
            return {"relay": "disconnected"}
        if kind == "reconnect":
            link.meter.relay_connected = True
            return {"relay": "connected"}
        if kind == "time_sync":
            return {"offset_s": 0.0}  # the simulator's clock is the machine's: nothing to correct
        if kind == "demand_reset":
            return {"max_demand_kw": 0.0}
        return None

    def _send_later_replies(self) -> None:
        now = time.monotonic()
        while self._later and self._later[0][0] <= now:
            _, _, link, reply = heapq.heappop(self._later)
            self._publish(link, Kind.REPLIES, reply)

    def registers(self, link: Link) -> dict[str, Any]:
        """What an on-demand read answers: the registers of the newest reading sent, as of its ts.
        The meter model itself may already be an interval ahead (real time prepares the next one)."""
        return dict(link.registers or link.meter.read_registers(dt.datetime.now(tz=dt.UTC)))

    def send(self, link: Link, emissions: Iterable[Emission], block_size: int = 1) -> None:
        """Publish in order; consecutive readings go as blocks of up to block_size (1: one object each)."""
        for kind, payloads in messages(emissions, block_size):
            if kind is Kind.READINGS:
                self._send_readings(link, payloads)
            else:
                self._publish(link, kind, payloads[0])

    def _send_readings(self, link: Link, readings: list[dict[str, Any]]) -> None:
        self._publish(link, Kind.READINGS, readings if len(readings) > 1 else readings[0])
        newest = max(readings, key=lambda r: r["ts"])
        # Out-of-order re-sends are older than what was already sent: they do not count.
        if link.newest_sent is None or newest["ts"] >= link.newest_sent:
            link.newest_sent = newest["ts"]
            link.registers = {
                "ts": newest["ts"],
                "register_import_kwh": newest["register_import_kwh"],
                "register_export_kwh": newest["register_export_kwh"],
            }

    def _publish(self, link: Link, kind: Kind, payload: Any) -> None:
        link.client.publish(topics.topic(link.meter.serial, kind), json.dumps(payload), qos=1)
        self.stats.published += 1

    def pump(self, timeout_s: float) -> None:
        """One pass of the network loop: read and write what is ready, keepalives once a second."""
        if not self._selector.get_map():
            time.sleep(timeout_s)
        else:
            for key, mask in self._selector.select(timeout_s):
                client = key.data.client
                if mask & selectors.EVENT_READ:
                    client.loop_read(max_packets=200)
                if mask & selectors.EVENT_WRITE:
                    client.loop_write()
        self._send_later_replies()
        now = time.monotonic()
        if now - self._last_misc >= 1.0:
            self._last_misc = now
            for link in self.links:
                link.client.loop_misc()
                if (
                    link.refused is None
                    and not link.connected
                    and link.client.socket() is None
                    and now >= link.retry_at
                ):
                    link.retry_at = now + RECONNECT_DELAY_S
                    try:
                        link.client.reconnect()
                    except OSError as exc:
                        logger.warning("meter %s cannot reconnect: %s", link.meter.serial, exc)

    def drain(self, *, below: int = 1, timeout_s: float = 120.0) -> bool:
        """Run the loop until fewer than `below` messages await their PUBACK; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.stats.unacked >= below:
            if time.monotonic() > deadline:
                return False
            self.pump(0.05)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        for link in self.links:
            if link.connected:
                link.client.disconnect()
        deadline = time.monotonic() + timeout_s
        while self._selector.get_map() and time.monotonic() < deadline:
            self.pump(0.05)
        for link in self.links:
            if link.client.socket() is not None:
                link.client.disconnect()
        self._selector.close()


def messages(emissions: Iterable[Emission], block_size: int = 1) -> Iterator[tuple[Kind, list[dict[str, Any]]]]:
    """The messages a meter publishes for its emissions, in order, each as (kind, payloads):
    consecutive readings in blocks of up to block_size, every event alone. A message's body is
    `wire(payloads)`."""
    block: list[dict[str, Any]] = []
    for emission in emissions:
        if emission.kind is Kind.READINGS and block_size > 1:
            block.append(emission.payload)
            if len(block) == block_size:
                yield Kind.READINGS, block
                block = []
            continue
        if block:
            yield Kind.READINGS, block
            block = []
        yield emission.kind, [emission.payload]
    if block:
        yield Kind.READINGS, block


def wire(payloads: list[dict[str, Any]]) -> bytes:
    """A message's body: a block of readings as an array, a lone reading or an event as one object."""
    return json.dumps(payloads if len(payloads) > 1 else payloads[0]).encode()


def run_accelerated(
    fleet: Fleet,
    *,
    start: dt.datetime,
    end: dt.datetime,
    labels: LabelWriter,
    block_size: int = BLOCK_SIZE,
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Backfill (start, end] as fast as the broker takes it, in interval blocks per meter."""
    live = fleet.live
    if not live:
        return
    interval_s = live[0].meter.interval_s
    chunk = dt.timedelta(seconds=interval_s * block_size)
    chunks = max(1, -(-int((end - start).total_seconds()) // int(chunk.total_seconds())))
    cursor = start
    with tqdm(total=chunks * len(live), unit="block", disable=not progress, desc="meters x blocks") as bar:
        while cursor < end and not should_stop():
            chunk_end = min(end, cursor + chunk)
            for link in live:
                sender, emissions = fleet.advance(link, cursor, chunk_end, labels, block_size)
                fleet.send(sender, emissions, block_size)
                fleet.pump(0)
                if fleet.stats.unacked >= HIGH_WATER:
                    fleet.drain(below=LOW_WATER)
                bar.update()
            cursor = chunk_end
            live = fleet.live  # an exchange replaced a link
    for link in fleet.links:
        fleet.send(link, link.meter.flush(), block_size)
    fleet.drain()


def run_realtime(
    fleet: Fleet,
    *,
    labels: LabelWriter,
    should_stop: Callable[[], bool],
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(tz=dt.UTC),
) -> None:
    """One reading per meter per interval, sent at the interval's end (plus the meter's offset),
    events at their own time, until should_stop() says so."""
    live = fleet.live
    if not live:
        return
    interval = dt.timedelta(seconds=live[0].meter.interval_s)
    prepared = dt.datetime.fromtimestamp(
        int(now().timestamp()) // live[0].meter.interval_s * live[0].meter.interval_s, tz=dt.UTC
    )
    if any(link.meter.last_ts for link in live):
        # After a catch-up or a resume, start one interval back: an interval that ended while the
        # catch-up ran is sent now, and each meter skips what it already sent (its last_ts).
        prepared -= interval
    offsets = {
        link.meter.serial: zlib.crc32(link.meter.serial.encode()) % 1000 / 1000 * REALTIME_SPREAD_S for link in live
    }
    due: list[tuple[dt.datetime, int, Link, Emission]] = []
    sequence = itertools.count()
    while not should_stop():
        # Prepare one interval ahead, so that an event inside it goes out at its own time.
        while prepared <= now():
            for link in live:
                sender, emissions = fleet.advance(link, prepared, prepared + interval, labels)
                offset = offsets.setdefault(
                    sender.meter.serial, zlib.crc32(sender.meter.serial.encode()) % 1000 / 1000 * REALTIME_SPREAD_S
                )
                for emission in emissions:
                    at = emission.at + dt.timedelta(seconds=offset)
                    heapq.heappush(due, (at, next(sequence), sender, emission))
            prepared += interval
            live = fleet.live
        moment = now()
        while due and due[0][0] <= moment:
            _, _, link, emission = heapq.heappop(due)
            fleet.send(link, [emission])
        wait_s = (due[0][0] - moment).total_seconds() if due else 1.0
        fleet.pump(max(0.0, min(1.0, wait_s)))
    logger.info("stopping: %s readings not yet due are dropped", len(due))
    fleet.drain(timeout_s=10.0)


def describe(stats: Stats) -> str:
    return (
        f"{stats.published} messages published, {stats.acked} acknowledged, {stats.rejected} rejected, "
        f"{stats.commands_answered} commands answered (at {iso(dt.datetime.now(tz=dt.UTC))})"
    )
