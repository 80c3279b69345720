"""A minimal MQTT 3.1.1 client on a plain socket, for the benchmark's load and its broker ceiling only.

Why not paho here: paho spends some 100 µs of Python per QoS 1 message, so a paho publisher on the
same 2 cores measures itself (it topped out at about 3,300 messages/s), not the broker or the ingest.
This client encodes every PUBLISH before the clock starts, writes them in large chunks, and counts
PUBACKs by the packet; the trivial subscriber acknowledges whole reads at once. The product never
uses it: meters and the ingest worker speak MQTT 5 through paho (mdms.core.mqtt.client).

Only what the benchmark needs: CONNECT with a username and password, QoS 1 PUBLISH, SUBSCRIBE,
PUBACK, DISCONNECT. Keep-alive is off (0), so the broker never waits for a PINGREQ.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, DISCONNECT = 1, 2, 3, 4, 8, 9, 14
# Packets sent and not yet acknowledged, at most: below the 65,535 packet ids, so none is reused
# while its first use is in flight.
WINDOW = 30_000
CHUNK = 256  # packets joined into one write


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _remaining_length(len(body)) + body


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    # Protocol "MQTT" level 4 (3.1.1); flags: username, password, clean session; keep-alive 0.
    variable = _string("MQTT") + bytes([4, 0x80 | 0x40 | 0x02]) + struct.pack("!H", 0)
    return packet(CONNECT, 0, variable + _string(client_id) + _string(username) + _string(password))


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    return packet(PUBLISH, 0b0010, _string(topic) + struct.pack("!H", packet_id) + payload)  # QoS 1


def puback_packet(packet_id: int) -> bytes:
    return bytes([PUBACK << 4, 2]) + struct.pack("!H", packet_id)


class _Packets:
    """Splits a byte stream into MQTT packets: (type, flags, body)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self.buffer += data
        out = []
        view, pos, end = self.buffer, 0, len(self.buffer)
        while pos < end:
            # The remaining length: 1 to 4 bytes, 7 bits each, least significant first.
            i, length, shift, complete = pos + 1, 0, 0, False
            while i < end and i <= pos + 4:
                byte = view[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    complete = True
                    break
            if not complete or i + length > end:
                break  # the rest arrives with the next read
            out.append((view[pos] >> 4, view[pos] & 0x0F, bytes(view[i : i + length])))
            pos = i + length
        del self.buffer[:pos]
        return out


class Connection:
    def __init__(self, host: str, port: int, client_id: str, username: str, password: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.packets = _Packets()
        self.pending: list[tuple[int, int, bytes]] = []  # read during the handshake, not yet handled
        self.sock.sendall(connect_packet(client_id, username, password))
        kind, _flags, body = self._next()
        if kind != CONNACK or len(body) < 2 or body[1] != 0:
            raise ConnectionError(f"the broker refused {client_id!r}: CONNACK return code {body[1:2].hex()}")
        self.sock.settimeout(None)

    def _next(self) -> tuple[int, int, bytes]:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.pending.extend(self.packets.feed(data))
        return self.pending.pop(0)

    def reads(self) -> Iterator[list[tuple[int, int, bytes]]]:
        """The packets of each read from the socket (first any left from the handshake), until it closes."""
        ready, self.pending = self.pending, []
        while True:
            if ready:
                yield ready
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            ready = self.packets.feed(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(packet(DISCONNECT, 0, b""))
        self.sock.close()


class FastPublisher:
    """Publishes pre-encoded QoS 1 messages as fast as the broker acknowledges them."""

    def __init__(self, host: str, port: int, client_id: str, username: str, password: str) -> None:
        self.connection = Connection(host, port, client_id, username, password)
        self.acked = 0
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, name=f"{client_id}-acks", daemon=True)
        self._reader.start()

    def encode(self, messages: Iterable[tuple[str, bytes]]) -> list[bytes]:
        """Encode before the clock starts: the measurement is of the broker and the ingest."""
        encoded = []
        for topic, payload in messages:
            self._next_id = self._next_id % 65535 + 1
            encoded.append(publish_packet(topic, payload, self._next_id))
        return encoded

    def _read(self) -> None:
        for ready in self.connection.reads():
            self.acked += sum(1 for kind, _flags, _body in ready if kind == PUBACK)

    def send(self, encoded: Sequence[bytes]) -> None:
        """Send every packet, keeping at most WINDOW unacknowledged; returns when all are written."""
        base = self.acked
        sock = self.connection.sock
        for start in range(0, len(encoded), CHUNK):
            while start - (self.acked - base) >= WINDOW:
                time.sleep(0.0005)
            sock.sendall(b"".join(encoded[start : start + CHUNK]))

    def wait_acked(self, count: int, timeout_s: float = 600) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.acked < count and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.acked >= count

    def close(self) -> None:
        self.connection.close()
        self._reader.join(5)


class CountingSubscriber:
    """The trivial QoS 1 subscriber: counts PUBLISH packets and acknowledges each read at once."""

    def __init__(self, host: str, port: int, client_id: str, username: str, password: str, topic: str) -> None:
        self.connection = Connection(host, port, client_id, username, password)
        self.received = 0
        sock = self.connection.sock
        sock.sendall(packet(SUBSCRIBE, 0b0010, struct.pack("!H", 1) + _string(topic) + bytes([1])))
        kind, _flags, body = self.connection._next()
        if kind != SUBACK or body[-1] not in (0, 1):
            raise ConnectionError(f"subscription to {topic!r} refused")
        self._reader = threading.Thread(target=self._read, name=f"{client_id}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        sock = self.connection.sock
        for ready in self.connection.reads():
            acks = []
            for kind, flags, body in ready:
                if kind != PUBLISH:
                    continue
                self.received += 1
                if flags & 0b0110:  # QoS 1: the packet id follows the topic
                    topic_length = struct.unpack_from("!H", body)[0]
                    acks.append(bytes([PUBACK << 4, 2]) + body[2 + topic_length : 4 + topic_length])
            if acks:
                sock.sendall(b"".join(acks))

    def wait_received(self, count: int, timeout_s: float = 600) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.received < count and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.received >= count

    def close(self) -> None:
        self.connection.close()
        self._reader.join(5)
