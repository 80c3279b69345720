"""How every MDMS process (ingest worker, command sender, broker admin, simulator) builds an MQTT client.

One place holds the protocol choices, so that they never drift between processes: paho-mqtt 2.x
with the VERSION2 callback API, MQTT v5 (shared subscriptions, session expiry and reason codes
need it), and TLS when settings.MQTT_TLS is on (see docs/mqtt-tls.md).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from django.conf import settings
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
    client.username_pw_set(username, password)
    if settings.MQTT_TLS:
        client.tls_set(ca_certs=settings.MQTT_CA_FILE or None)
    _session_wishes[client] = _SessionWish(clean_start=clean_start, session_expiry_s=session_expiry_s)
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
