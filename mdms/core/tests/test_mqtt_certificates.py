"""Meters with client certificates, against the real broker's TLS listener (settings.MQTT_TLS_PORT).

The broker is this checkout's own (scripts/services.py): its TLS listener trusts the development
meter CA under var/mqtt-ca/, takes the certificate's CN as the username, and reads the CRL again
on SIGHUP. Every test uses serials of its own and deletes the broker accounts it made (the
`serial` fixture of test_mqtt_auth).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.core.management import call_command

from mdms.core import services
from mdms.core.models import Meter, MeterCertificate
from mdms.core.mqtt import broker, certificates, topics
from mdms.core.mqtt import client as mqtt_client
from mdms.core.tests import test_mqtt_auth
from mdms.core.tests.test_mqtt_auth import WAIT_S, Session, Sessions, admin_watcher

# The password tests' fixtures: unique serials whose broker accounts are deleted, password sessions.
serial = test_mqtt_auth.serial
sessions = test_mqtt_auth.sessions


@dataclass
class CertificateSession(Session):
    """A session on the TLS listener; `error` is why the TLS handshake or the connection failed."""

    error: str | None = None


@dataclass(frozen=True)
class MeterFiles:
    serial: str
    certificate_file: str
    key_file: str


def save(issued: certificates.IssuedCertificate, directory: Path) -> MeterFiles:
    """What a meter keeps: its certificate and key (the test's own copy; the MDMS keeps no key)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{issued.common_name}-{issued.serial_hex[:8]}"
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_text(issued.certificate_pem)
    key.write_text(issued.private_key_pem)
    return MeterFiles(issued.common_name, str(cert), str(key))


def open_certificate_session(files: MeterFiles) -> CertificateSession:
    client = mqtt_client.new_certificate_client(
        client_id=f"test-{files.serial}-{uuid.uuid4().hex[:6]}",
        certificate_file=files.certificate_file,
        key_file=files.key_file,
    )
    session = CertificateSession(client)

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        session.connack = reason
        session.connected.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *args: session.disconnected.set()
    client.on_message = lambda c, u, message: session.messages.put(message)
    client.on_subscribe = lambda c, u, mid, reasons, props: session.acks.put(list(reasons))
    client.on_publish = lambda c, u, mid, reason, props: session.acks.put([reason])
    client.reconnect_delay_set(min_delay=60, max_delay=60)
    try:
        mqtt_client.connect(client)
    except (ssl.SSLError, OSError) as exc:
        session.error = str(exc)
        return session
    client.loop_start()
    if not session.connected.wait(WAIT_S):
        session.error = "no CONNACK"
    return session


CertificateSessions = Callable[[MeterFiles], CertificateSession]


@pytest.fixture
def tls_sessions() -> Iterator[CertificateSessions]:
    opened: list[CertificateSession] = []

    def open_(files: MeterFiles) -> CertificateSession:
        opened.append(open_certificate_session(files))
        return opened[-1]

    yield open_
    for session in opened:
        session.client.disconnect()
        session.client.loop_stop()


RegisterWithCertificate = Callable[[str], tuple[Meter, MeterFiles]]


@pytest.fixture
def register_with_certificate(
    db: None, serial: Callable[[str], str], django_capture_on_commit_callbacks: Any, tmp_path: Path
) -> RegisterWithCertificate:
    def register(prefix: str) -> tuple[Meter, MeterFiles]:
        with django_capture_on_commit_callbacks(execute=True):
            meter, credentials = services.meter_register(serial=serial(prefix), certificate=True)
        assert credentials.certificate is not None
        return meter, save(credentials.certificate, tmp_path)

    return register


def reissue(meter: Meter, capture: Any, directory: Path) -> MeterFiles:
    with capture(execute=True):
        issued = services.meter_issue_certificate(meter=meter)
    return save(issued, directory)


def handshake_refusal(files: MeterFiles) -> str | None:
    """Why the broker refuses this client certificate in a TLS handshake, or None if it accepts it.

    TLS 1.2 on purpose: in TLS 1.3 the client's handshake ends before the broker has judged its
    certificate, and the broker's alert is lost when it closes the connection (paho then says only
    "EOF occurred in violation of protocol"). In TLS 1.2 the alert ends the handshake, with its reason.
    """
    context = ssl.create_default_context(cafile=settings.MQTT_METER_CA_CERT_FILE)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certificate_file, files.key_file)
    try:
        with (
            socket.create_connection((settings.MQTT_HOST, settings.MQTT_TLS_PORT), timeout=WAIT_S) as raw,
            context.wrap_socket(raw, server_hostname="localhost"),
        ):
            return None
    except ssl.SSLError as exc:
        return str(exc.reason or exc)


def broker_pid() -> int:
    return int(Path(settings.MQTT_BROKER_PID_FILE).read_text().split()[0])


def refused_within(files: MeterFiles, seconds: float) -> tuple[CertificateSession, float]:
    """Try to connect until the broker refuses (bounded): the session that was refused, and the wait."""
    started = time.monotonic()
    while True:
        session = open_certificate_session(files)
        session.client.disconnect()
        session.client.loop_stop()
        if not session.accepted or time.monotonic() - started > seconds:
            return session, time.monotonic() - started
        time.sleep(0.1)


def test_valid_certificate_connects_and_publishes_on_its_own_topic(
    sessions: Sessions, tls_sessions: CertificateSessions, register_with_certificate: RegisterWithCertificate
) -> None:
    meter, files = register_with_certificate("CERT")
    own = topics.topic(meter.serial, topics.Kind.READINGS)
    watcher = admin_watcher(sessions, own)

    session = tls_sessions(files)
    published = session.publish(own, '{"ts": "2026-11-01T00:15:00Z", "energy_import_kwh": 0.42}')

    assert session.accepted, session.error
    assert not published[0].is_failure
    assert watcher.received(within_s=2.0) == [own]


def test_certificate_meter_has_no_password_and_the_registry_keeps_no_key(
    sessions: Sessions, register_with_certificate: RegisterWithCertificate
) -> None:
    meter, files = register_with_certificate("CERT")
    stored = MeterCertificate.objects.get(meter=meter)
    issued_cert = certificates.load_certificate(Path(files.certificate_file).read_text())

    assert meter.mqtt_password_hash == ""
    assert not sessions(meter.serial, "").accepted
    assert stored.serial_number == certificates.serial_hex(issued_cert.serial_number)
    assert stored.fingerprint_sha256 == certificates.fingerprint(issued_cert)
    assert issued_cert.subject.rfc4514_string() == f"CN={meter.serial}"
    assert stored.not_after == issued_cert.not_valid_after_utc
    key_text = Path(files.key_file).read_text()
    assert not any(
        key_text in str(value) for value in MeterCertificate.objects.filter(meter=meter).values().first().values()
    )  # type: ignore[union-attr]


def test_certificate_of_meter_a_cannot_publish_or_subscribe_as_meter_b(
    sessions: Sessions, tls_sessions: CertificateSessions, register_with_certificate: RegisterWithCertificate
) -> None:
    meter_a, files_a = register_with_certificate("A")
    meter_b, _ = register_with_certificate("B")
    watch_b = admin_watcher(sessions, f"meters/{meter_b.serial}/#")
    a = tls_sessions(files_a)

    refused_publish = a.publish(topics.topic(meter_b.serial, topics.Kind.READINGS))
    refused_subscribe = a.subscribe(topics.topic(meter_b.serial, topics.Kind.COMMANDS))
    own_publish = a.publish(topics.topic(meter_a.serial, topics.Kind.READINGS))

    assert a.accepted, a.error
    assert refused_publish[0].is_failure
    assert refused_subscribe[0].is_failure
    assert not own_publish[0].is_failure
    assert watch_b.received(within_s=1.0) == []


def test_reissuing_revokes_the_old_certificate_within_seconds_without_a_broker_restart(
    sessions: Sessions,
    tls_sessions: CertificateSessions,
    register_with_certificate: RegisterWithCertificate,
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
) -> None:
    meter, old = register_with_certificate("REISSUE")
    before = tls_sessions(old)
    assert before.accepted, before.error
    bystander_meter, bystander_files = register_with_certificate("BYSTANDER")
    bystander = tls_sessions(bystander_files)
    ingest = sessions(*mqtt_client.ingest_credentials())
    assert bystander.accepted and ingest.accepted
    pid = broker_pid()

    new = reissue(meter, django_capture_on_commit_callbacks, tmp_path / "new")
    refused, waited = refused_within(old, seconds=10.0)

    assert not refused.accepted
    assert waited < 10.0
    assert handshake_refusal(old) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    assert handshake_refusal(new) is None
    # The session opened with the old certificate is ended too, and the new certificate works.
    assert before.disconnected.wait(WAIT_S)
    assert tls_sessions(new).accepted
    assert broker_pid() == pid, "the broker was restarted"
    # The SIGHUP that makes the broker read the CRL leaves everyone else's sessions alone.
    assert not bystander.disconnected.is_set() and not ingest.disconnected.is_set()
    assert not bystander.publish(topics.topic(bystander_meter.serial, topics.Kind.READINGS))[0].is_failure
    revoked = MeterCertificate.objects.get(meter=meter, revoked_at__isnull=False)
    assert revoked.revocation_reason == MeterCertificate.RevocationReason.SUPERSEDED
    assert int(revoked.serial_number, 16) in certificates.revoked_serials(Path(settings.MQTT_METER_CRL_FILE))


def test_disabled_meter_certificate_is_refused_and_stays_revoked_after_enabling(
    tls_sessions: CertificateSessions,
    register_with_certificate: RegisterWithCertificate,
    django_capture_on_commit_callbacks: Any,
) -> None:
    meter, files = register_with_certificate("DISABLE")
    connected = tls_sessions(files)
    assert connected.accepted, connected.error

    with django_capture_on_commit_callbacks(execute=True):
        services.meter_disable(meter=meter)
    refused, _ = refused_within(files, seconds=10.0)
    with django_capture_on_commit_callbacks(execute=True):
        services.meter_enable(meter=meter)

    assert connected.disconnected.wait(WAIT_S)
    assert not refused.accepted
    assert handshake_refusal(files) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    assert not open_certificate_session(files).accepted


def test_disabled_meter_cannot_publish_with_its_certificate_even_before_the_crl_is_read(
    tls_sessions: CertificateSessions,
    register_with_certificate: RegisterWithCertificate,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mosquitto 2.0.11 lets a disabled account in with a certificate (no password check there), so
    # the broker account of a disabled meter must hold no role that allows anything.
    meter, files = register_with_certificate("NOCRL")
    monkeypatch.setattr(services, "meter_certificates_revoked_hooks", [])
    with django_capture_on_commit_callbacks(execute=True):
        services.meter_disable(meter=meter)

    session = tls_sessions(files)
    refused = session.publish(topics.topic(meter.serial, topics.Kind.READINGS)) if session.accepted else None

    assert refused is None or refused[0].is_failure


def test_certificate_from_another_ca_is_refused(
    tls_sessions: CertificateSessions, register_with_certificate: RegisterWithCertificate, tmp_path: Path
) -> None:
    meter, _ = register_with_certificate("FORGED")
    other_ca = certificates.create_authority(tmp_path / "other" / "ca.crt", tmp_path / "other" / "ca.key")
    forged = save(certificates.issue_certificate(other_ca, common_name=meter.serial, days=30), tmp_path / "forged")

    session = tls_sessions(forged)

    assert not session.accepted
    assert handshake_refusal(forged) == "TLSV1_ALERT_UNKNOWN_CA"


def test_plain_mqtt_and_tls_without_a_client_certificate_are_refused_on_the_tls_port() -> None:
    # Plain MQTT: the listener expects a TLS ClientHello and gets a CONNECT; nothing MQTT comes back.
    with socket.create_connection((settings.MQTT_HOST, settings.MQTT_TLS_PORT), timeout=WAIT_S) as sock:
        sock.sendall(
            bytes([0x10, 0x10, 0x00, 0x04]) + b"MQTT" + bytes([0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x00])
        )
        try:
            answer = sock.recv(16)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20"), "a CONNACK came back over plain MQTT"

    plain = mqtt_client.new_client(client_id=f"test-plain-{uuid.uuid4().hex[:6]}", username="x", password="y")
    connacks: list[Any] = []
    closed = threading.Event()
    plain.on_connect = lambda c, u, f, reason, p: connacks.append(reason)
    plain.on_disconnect = lambda *args: closed.set()
    plain.reconnect_delay_set(min_delay=60, max_delay=60)
    plain.connect(settings.MQTT_HOST, settings.MQTT_TLS_PORT)
    plain.loop_start()
    try:
        assert closed.wait(WAIT_S), "the TLS port kept a plain MQTT connection open"
    finally:
        plain.loop_stop()
    assert connacks == []

    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tls_exchange_without_a_client_certificate()


def tls_exchange_without_a_client_certificate() -> None:
    context = ssl.create_default_context(cafile=settings.MQTT_METER_CA_CERT_FILE)
    with (
        socket.create_connection((settings.MQTT_HOST, settings.MQTT_TLS_PORT), timeout=WAIT_S) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"\x10\x00")
        if not tls.recv(1):
            raise ConnectionResetError("closed without a word")


def test_register_meter_command_writes_the_certificate_and_key_once(
    db: None,
    tls_sessions: CertificateSessions,
    serial: Callable[[str], str],
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
) -> None:
    name = serial("CMD")
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("register_meter", name, "--certificate", "--out", str(tmp_path), stdout=out)

    key = tmp_path / f"{name}.key"
    files = MeterFiles(name, str(tmp_path / f"{name}.crt"), str(key))
    assert key.stat().st_mode & 0o077 == 0
    assert (tmp_path / "ca.crt").read_text() == Path(settings.MQTT_METER_CA_CERT_FILE).read_text()
    assert "password:" not in out.getvalue()
    assert str(settings.MQTT_TLS_PORT) in out.getvalue()
    assert tls_sessions(files).accepted


def test_mqtt_sync_publishes_a_revocation_the_hook_missed(
    register_with_certificate: RegisterWithCertificate,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meter, files = register_with_certificate("MISSED")
    with monkeypatch.context() as patched:
        patched.setattr(services, "meter_certificates_revoked_hooks", [])
        with django_capture_on_commit_callbacks(execute=True):
            services.meter_issue_certificate(meter=meter)
    still_valid = open_certificate_session(files)
    still_valid.client.disconnect()
    still_valid.client.loop_stop()

    call_command("mqtt_sync", stdout=StringIO())
    refused, _ = refused_within(files, seconds=10.0)

    assert still_valid.accepted, "the control: without the hook the old certificate still works"
    assert not refused.accepted
    assert handshake_refusal(files) == "SSLV3_ALERT_CERTIFICATE_REVOKED"


def test_broker_account_sync_keeps_a_disabled_meter_without_its_role(
    register_with_certificate: RegisterWithCertificate, django_capture_on_commit_callbacks: Any
) -> None:
    meter, _ = register_with_certificate("ROLES")
    with django_capture_on_commit_callbacks(execute=True):
        services.meter_disable(meter=meter)
    with broker.admin_session() as admin:
        disabled = admin.run([{"command": "getClient", "username": meter.serial}])[0]["data"]["client"]
    with django_capture_on_commit_callbacks(execute=True):
        services.meter_enable(meter=meter)
    with broker.admin_session() as admin:
        enabled = admin.run([{"command": "getClient", "username": meter.serial}])[0]["data"]["client"]

    assert {r["rolename"] for r in disabled["roles"]} == {broker.METER_ROLE}
    assert {r["rolename"] for r in enabled["roles"]} == {broker.METER_ROLE, broker.meter_role(meter.serial)}


def test_removing_a_meter_revokes_its_certificate(db: None) -> None:
    meter, _ = services.meter_register(serial=f"RM-{uuid.uuid4().hex[:10]}", certificate=True)

    services.meter_remove(meter=meter, on=meter.created_at.date())

    certificate = MeterCertificate.objects.get(meter=meter)
    assert certificate.revoked_at is not None
    assert certificate.revocation_reason == MeterCertificate.RevocationReason.METER_REMOVED


def test_mqtt_sync_does_not_ask_for_passwords_of_meters_on_certificates(
    register_with_certificate: RegisterWithCertificate,
) -> None:
    meter, _ = register_with_certificate("SYNC")
    with broker.admin_session() as admin:
        admin.run([{"command": "deleteClient", "username": meter.serial}])  # as after a broker restore
    out = StringIO()

    call_command("mqtt_sync", stdout=out)

    assert "created 1" in out.getvalue()
    assert meter.serial not in out.getvalue()
