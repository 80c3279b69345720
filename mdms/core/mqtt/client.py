"""How every MDMS process (ingest worker, command sender, broker admin, simulator) builds an MQTT client.

One place holds the protocol choices, so that they never drift between processes: paho-mqtt 2.x
with the VERSION2 callback API, MQTT v5 (shared subscriptions, session expiry and reason codes
need it), and TLS when settings.MQTT_TLS is on (see docs/mqtt-tls.md).
"""

from __future__ import annotations

import struct
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from django.conf import settings
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# How long a short-lived client (a command, the admin, a probe) waits for the broker's CONNACK.
CONNECT_TIMEOUT_S = 5.0


class BrokerError(Exception):
    """The broker could not be reached, did not answer, or refused what was asked."""


class BrokerRefused(BrokerError):
    """The broker answered the CONNECT with a failure reason code (bad credentials, not authorised)."""


@dataclass(frozen=True)
class _SessionWish:
    clean_start: bool
    session_expiry_s: int
    port: int | None = None  # None: settings.MQTT_PORT


# What each client asked for at new_client(), for connect(); kept beside the client rather than in
# its userdata, which belongs to the caller.
_session_wishes: weakref.WeakKeyDictionary[mqtt.Client, _SessionWish] = weakref.WeakKeyDictionary()


# A PUBACK without reason code or properties (success, MQTT 5 3.4.2.1): what paho sends for ack().
_PUBACK = struct.Struct("!BBH")
# Bytes asked of the socket at once by BulkReceiveClient: a few thousand small PUBLISH packets.
RECEIVE_CHUNK = 256 * 1024

# What BulkReceiveClient hands a PUBLISH to: (topic, payload, packet id, QoS).
RawPublishCallback = Callable[[str, bytes, int, int], None]


class BulkReceiveClient(mqtt.Client):
    """paho's client, for a consumer of many small QoS 1 messages: the ingest worker.

    Profiled (py-spy) on the worker at one reading per message, paho's network thread took half of
    the process's time, three quarters of it in three places this class cuts:

    - Reading: paho reads each packet with at least three recv() calls (its type byte, its length
      byte by byte, its body) and goes back to select() between packets. Here the socket is read in
      chunks of RECEIVE_CHUNK, and every packet already buffered is handled before select().
    - Decoding a PUBLISH: paho builds an MQTTMessage (with a threading.Condition of its own), an
      MQTT 5 Properties object and a topic match per message. A PUBLISH without properties (what
      the broker forwards when the publisher set none) goes here straight to on_raw_publish,
      decoded from the packet's bytes. Anything else (properties, QoS 2, no on_raw_publish) goes
      through paho's own code, to on_message.
    - Acknowledging: ack() queues one 4-byte PUBACK and wakes the network thread, one write each;
      ack_many() queues a stored batch's acknowledgements as one write, in the order given.

    These override paho's private methods (_sock_recv, _handle_publish): paho-mqtt is pinned
    exactly in requirements.txt, and ingest/tests/test_worker.py runs the worker against a real
    broker, with publishes that carry properties too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_raw_publish: RawPublishCallback | None = None
        self._chunk = b""
        self._chunk_pos = 0
        self._chunk_sock: Any = None

    def _buffered(self) -> bool:
        return self._chunk_sock is self._sock and self._chunk_pos < len(self._chunk)

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._chunk_sock is not self._sock:  # a new connection: nothing buffered from the old one counts
            self._chunk, self._chunk_pos, self._chunk_sock = b"", 0, self._sock
        pos = self._chunk_pos
        if pos >= len(self._chunk):
            data = super()._sock_recv(max(bufsize, RECEIVE_CHUNK))
            if len(data) <= bufsize:
                return data
            self._chunk, pos = data, 0
        self._chunk_pos = pos + bufsize
        return self._chunk[pos : pos + bufsize]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # select() cannot see what is already buffered here: handle it now. Each round consumes
        # at least one buffered byte, so this ends.
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self._buffered():
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        receive = self.on_raw_publish
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if receive is None or qos == 2 or self._protocol != mqtt.MQTTv5 or not (self._manual_ack or qos == 0):
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        if len(packet) < 2:
            return super()._handle_publish()  # malformed: paho says so
        topic_end = 2 + ((packet[0] << 8) | packet[1])
        properties_at = topic_end + 2 if qos else topic_end
        if len(packet) <= properties_at or packet[properties_at] != 0:
            return super()._handle_publish()  # properties to decode (or malformed)
        mid = (packet[topic_end] << 8) | packet[topic_end + 1] if qos else 0
        # An invalid UTF-8 topic becomes one no meter has (a dead letter), not an exception here.
        topic = bytes(packet[2:topic_end]).decode("utf-8", "replace")
        with self._in_callback_mutex:
            receive(topic, bytes(packet[properties_at + 1 :]), mid, qos)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge these QoS 1 messages (manual_ack), in this order, with one write."""
        if not self._manual_ack or not mids:
            return
        pack, command = _PUBACK.pack, int(mqtt.PUBACK)
        packet = b"".join([pack(command, 2, mid) for mid in mids])
        self._packet_queue(mqtt.PUBACK, packet, 0, 1)


def _configure(client: mqtt.Client, username: str, password: str, clean_start: bool, session_expiry_s: int) -> None:
    client.username_pw_set(username, password)
    if settings.MQTT_TLS:
        client.tls_set(ca_certs=settings.MQTT_CA_FILE or None)
    _session_wishes[client] = _SessionWish(clean_start=clean_start, session_expiry_s=session_expiry_s)


def new_client(
    *,
    client_id: str,
    username: str,
    password: str,
    clean_start: bool = True,
    session_expiry_s: int = 0,
    manual_ack: bool = False,
) -> mqtt.Client:
    """An MQTT v5 client with credentials (and TLS when configured), not yet connected.

    clean_start and session_expiry_s are remembered on the client, so that `connect(client)` and
    paho's automatic reconnects ask for the same session. manual_ack lets the ingest worker
    acknowledge a QoS 1 message only once it is stored (at-least-once end to end).
    """
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    _configure(client, username, password, clean_start, session_expiry_s)
    return client


def new_bulk_client(
    *, client_id: str, username: str, password: str, clean_start: bool, session_expiry_s: int
) -> BulkReceiveClient:
    """new_client for the ingest worker: a BulkReceiveClient, acknowledging by hand (manual_ack)."""
    client = BulkReceiveClient(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    _configure(client, username, password, clean_start, session_expiry_s)
    return client


def new_certificate_client(
    *,
    client_id: str,
    certificate_file: str,
    key_file: str,
    clean_start: bool = True,
    session_expiry_s: int = 0,
) -> mqtt.Client:
    """An MQTT v5 client that logs in as a meter with its client certificate, on the TLS listener.

    No username or password: the broker takes the certificate's CN as the username. The broker's
    own certificate is checked against MQTT_CA_FILE, or else the meter CA (development: the broker's
    certificate comes from it). `connect(client)` goes to settings.MQTT_TLS_PORT.
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(
        ca_certs=settings.MQTT_CA_FILE or settings.MQTT_METER_CA_CERT_FILE or None,
        certfile=certificate_file,
        keyfile=key_file,
    )
    _session_wishes[client] = _SessionWish(
        clean_start=clean_start, session_expiry_s=session_expiry_s, port=settings.MQTT_TLS_PORT
    )
    return client


def connect_properties(session_expiry_s: int) -> Properties | None:
    """CONNECT properties asking the broker to keep the session this long after a disconnect."""
    if session_expiry_s <= 0:
        return None
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = session_expiry_s
    return properties


def connect(
    client: mqtt.Client,
    *,
    clean_start: bool | None = None,
    session_expiry_s: int | None = None,
    keepalive: int = 30,
) -> None:
    """Open the connection to the configured broker (blocking for the TCP/TLS handshake only).

    The CONNACK arrives in on_connect once the network loop runs (loop_start/loop_forever);
    a refused login shows there as a failure reason code. Arguments left as None take what was
    given to new_client (whose defaults are clean_start=True, session_expiry_s=0). paho keeps
    both for its automatic reconnects.
    """
    wish = _session_wishes.get(client, _SessionWish(clean_start=True, session_expiry_s=0))
    if clean_start is None:
        clean_start = wish.clean_start
    if session_expiry_s is None:
        session_expiry_s = wish.session_expiry_s
    client.connect(
        settings.MQTT_HOST,
        wish.port or settings.MQTT_PORT,
        keepalive=keepalive,
        clean_start=clean_start,
        properties=connect_properties(session_expiry_s),
    )


def ingest_credentials() -> tuple[str, str]:
    """The ingest workers' account: shared subscription to what meters send, publish commands."""
    return settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD


def admin_credentials() -> tuple[str, str]:
    """The broker administrator's account (dynamic-security control topic)."""
    return settings.MQTT_ADMIN_USERNAME, settings.MQTT_ADMIN_PASSWORD


@contextmanager
def session(client: mqtt.Client, *, keepalive: int = 30, timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[mqtt.Client]:
    """A connected client with its network loop running, for a short-lived task.

    Connects, starts the loop and waits for the CONNACK (raising BrokerError when the broker cannot
    be reached or does not answer, BrokerRefused when it says no); always disconnects and stops the
    loop on the way out. A client's own on_connect still runs, before the wait ends, so a caller
    can subscribe there.
    """
    answered = threading.Event()
    refusals: list[str] = []
    own_on_connect: Any = client.on_connect  # paho types it for every callback API version

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            refusals.append(str(reason))
        elif own_on_connect is not None:
            own_on_connect(c, userdata, flags, reason, props)
        answered.set()

    client.on_connect = on_connect
    where = f"{settings.MQTT_HOST}:{settings.MQTT_PORT}"
    try:
        connect(client, keepalive=keepalive)
    except OSError as exc:
        raise BrokerError(f"cannot reach the broker at {where}: {exc}") from exc
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise BrokerError(f"no answer from the broker at {where}")
        if refusals:
            raise BrokerRefused(f"the broker at {where} refused the connection: {refusals[0]}")
        yield client
    finally:
        client.disconnect()
        client.loop_stop()
