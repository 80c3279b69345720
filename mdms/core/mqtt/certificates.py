"""The meters' certificate authority: meter and broker certificates, the CRL, and the broker reload.

A meter may log in on the broker's TLS listener with a client certificate instead of a password.
The broker (scripts/services.py in development, deploy/mosquitto in production) trusts this CA
only, takes the certificate's common name as the MQTT username (`use_identity_as_username`), and
the per-meter dynamic-security ACLs of that username apply (mdms.core.mqtt.broker).

Where the CA comes from (settings, see mdms/settings.py):
- development: created on first use under var/mqtt-ca/ (ca.key stays there, mode 0600);
- production: MQTT_METER_CA_CERT_FILE and MQTT_METER_CA_KEY_FILE point at the utility's CA, which
  is never created here.

A meter's private key is returned once by `issue_certificate` and never written anywhere by this
module; the registry keeps the certificate's serial number, fingerprint and validity
(mdms.core.models.MeterCertificate).

Revocation: `publish_crl` writes the CRL the broker's listener reads (`crlfile`). Mosquitto 2.0.11
reads it once when the listener starts and again on SIGHUP (checked on this project's broker: a
revoked certificate still connects until the SIGHUP, and is refused with "certificate revoked"
after it), so `reload_broker` sends one. In production the broker's container watches the file
instead (deploy/mosquitto/init.sh). The CRL only grows: revocations already in the file are kept
when new ones are added, so two registries sharing one broker and one CA (the development database
and the test database) never un-revoke each other's certificates.

This module does not touch Django's database and reads settings only in the `configured_*`
helpers, so scripts/services.py can use it before Django is set up.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# ECDSA P-256: accepted by OpenSSL (Mosquitto) and by every TLS stack meters ship, and a key takes
# a millisecond to make, where RSA-2048 takes about 100 ms (registering 10,000 meters).
CURVE = ec.SECP256R1()
CA_DAYS = 20 * 365
BROKER_DAYS = 825
# How long a published CRL stays valid. OpenSSL refuses every client certificate once the CRL's
# next update has passed, so it is long, and `crl_needs_refresh` renews it at half-life (every
# `services.py up` and `manage.py mqtt_sync` checks).
CRL_DAYS = 365
BROKER_RENEW_BEFORE = dt.timedelta(days=30)


class CertificateError(Exception):
    """The CA is missing or unreadable, or a certificate could not be issued or read."""


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    # The development CA is EC (P-256); a utility's own CA may be RSA.
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key, as issued. The key exists only in this object."""

    common_name: str
    certificate_pem: str
    private_key_pem: str
    ca_certificate_pem: str
    serial_number: int
    fingerprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def serial_hex(self) -> str:
        return serial_hex(self.serial_number)


@dataclass(frozen=True)
class Revocation:
    serial_number: int
    revoked_at: dt.datetime


def serial_hex(serial_number: int) -> str:
    """How the registry and the docs spell a certificate serial number (as `openssl x509 -serial`)."""
    return f"{serial_number:X}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _write_private(path: Path, data: str) -> None:
    """Write a file that only its owner may read, atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """One writer at a time among the processes sharing the CA directory (web, workers, tests)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- the authority ---------------------------------------------------------------------------


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot read the meter CA ({cert_path}, {key_path}): {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"the meter CA key {key_path} must be an EC or RSA key, not {type(key).__name__}")
    if _public_der(certificate.public_key()) != _public_der(key.public_key()):
        raise CertificateError(f"{key_path} is not the private key of {cert_path}")
    return Authority(certificate, key)


def create_authority(cert_path: Path, key_path: Path, *, name: str = "MDMS meter CA (development)") -> Authority:
    """A new self-signed CA, written to cert_path and key_path (the key readable by its owner only)."""
    key = _new_key()
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MDMS"), x509.NameAttribute(NameOID.COMMON_NAME, name)]
    )
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, certificate.public_bytes(serialization.Encoding.PEM).decode())
    return Authority(certificate, key)


def load_or_create_authority(cert_path: Path, key_path: Path) -> Authority:
    """The development CA: made on first use, then the same one (under a lock: two first uses race)."""
    if cert_path.exists() and key_path.exists():
        return load_authority(cert_path, key_path)
    with _locked(cert_path.with_name(".ca.lock")):
        if cert_path.exists() and key_path.exists():
            return load_authority(cert_path, key_path)
        return create_authority(cert_path, key_path)


# --- certificates ----------------------------------------------------------------------------


def issue_certificate(
    authority: Authority,
    *,
    common_name: str,
    days: int,
    server_names: Iterable[str] = (),
) -> IssuedCertificate:
    """A new key pair and a certificate for it, signed by the authority.

    Without server_names it is a client certificate (a meter: CN = serial). With them it is the
    broker's server certificate, valid for those DNS names and IP addresses.
    """
    key = _new_key()
    now = _now()
    ca_cert = authority.certificate
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    names = list(server_names)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.private_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
    certificate = builder.sign(authority.private_key, hashes.SHA256())
    return IssuedCertificate(
        common_name=common_name,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=_key_pem(key),
        ca_certificate_pem=authority.certificate_pem,
        serial_number=certificate.serial_number,
        fingerprint_sha256=fingerprint(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def write_meter_files(issued: IssuedCertificate, directory: Path) -> list[Path]:
    """Hand a meter its files: DIR/SERIAL.crt, DIR/SERIAL.key (its owner only) and DIR/ca.crt."""
    cert = directory / f"{issued.common_name}.crt"
    key = directory / f"{issued.common_name}.key"
    ca = directory / "ca.crt"
    _write_private(key, issued.private_key_pem)
    _write_public(cert, issued.certificate_pem)
    _write_public(ca, issued.ca_certificate_pem)
    return [cert, key, ca]


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def ensure_broker_certificate(authority: Authority, cert_path: Path, key_path: Path, *, names: list[str]) -> bool:
    """The broker's server certificate from this CA, renewed when missing, foreign or near its end.

    Returns whether it was (re)issued, in which case a running broker needs a restart or SIGHUP.
    """
    try:
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        current.verify_directly_issued_by(authority.certificate)
        if key_path.exists() and current.not_valid_after_utc - _now() > BROKER_RENEW_BEFORE:
            return False
    except (OSError, ValueError, TypeError, InvalidSignature):  # missing, unreadable, or another CA's
        pass
    issued = issue_certificate(authority, common_name=names[0], days=BROKER_DAYS, server_names=names)
    _write_private(key_path, issued.private_key_pem)
    _write_public(cert_path, issued.certificate_pem)
    return True


def load_certificate(pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from exc


# --- revocation ------------------------------------------------------------------------------


def _read_crl(authority: Authority, crl_path: Path) -> dict[int, dt.datetime]:
    """The revocations already published by this CA (an unreadable or foreign CRL counts as none)."""
    try:
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    except (OSError, ValueError):
        return {}
    if crl.issuer != authority.certificate.subject or not crl.is_signature_valid(authority.private_key.public_key()):
        return {}
    return {entry.serial_number: entry.revocation_date_utc for entry in crl}


def publish_crl(authority: Authority, crl_path: Path, revocations: Iterable[Revocation]) -> int:
    """Write the CRL: what it already held, plus these revocations. Returns how many it lists.

    Written to a temporary file and renamed, so the broker never reads half a CRL (on a SIGHUP a
    broken crlfile would take the TLS listener down).
    """
    with _locked(crl_path.with_name(".crl.lock")):
        entries = _read_crl(authority, crl_path)
        for revocation in revocations:
            entries.setdefault(revocation.serial_number, revocation.revoked_at)
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(authority.certificate.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=CRL_DAYS))
        )
        for serial_number, revoked_at in sorted(entries.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial_number).revocation_date(revoked_at).build()
            )
        crl = builder.sign(authority.private_key, hashes.SHA256())
        _write_public(crl_path, crl.public_bytes(serialization.Encoding.PEM).decode())
        return len(entries)


def crl_needs_refresh(authority: Authority, crl_path: Path) -> bool:
    """Whether the CRL is missing, foreign, or past half of its life (renew it before OpenSSL refuses all)."""
    try:
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    except (OSError, ValueError):
        return True
    # Two development CAs share a name: only the signature tells whose CRL this is.
    if not crl.is_signature_valid(authority.private_key.public_key()) or crl.next_update_utc is None:
        return True
    return crl.next_update_utc - _now() < dt.timedelta(days=CRL_DAYS / 2)


def revoked_serials(crl_path: Path) -> set[int]:
    """The serial numbers a CRL file lists (for checks and tests)."""
    try:
        return {entry.serial_number for entry in x509.load_pem_x509_crl(crl_path.read_bytes())}
    except (OSError, ValueError):
        return set()


def reload_broker(pid_file: Path) -> bool:
    """Ask the broker to read its CRL again (SIGHUP). False when there is no broker to tell.

    Only a broker whose pid file this project wrote is signalled (development: var/run/mosquitto.pid).
    In production the broker runs elsewhere and reloads itself when the CRL file changes.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# --- from the settings -------------------------------------------------------------------------


def configured_authority() -> Authority:
    """The CA the settings name; in development, the one under var/mqtt-ca/, made on first use."""
    from django.conf import settings

    cert_path, key_path = Path(settings.MQTT_METER_CA_CERT_FILE), Path(settings.MQTT_METER_CA_KEY_FILE)
    if not settings.MQTT_METER_CA_CERT_FILE or not settings.MQTT_METER_CA_KEY_FILE:
        raise CertificateError("meter certificates need a CA: set MQTT_METER_CA_CERT_FILE and MQTT_METER_CA_KEY_FILE")
    if settings.MQTT_METER_CA_CREATE:
        return load_or_create_authority(cert_path, key_path)
    return load_authority(cert_path, key_path)


def configured_publish_crl(revocations: Iterable[Revocation]) -> int:
    """Publish the CRL where the settings say, and tell the development broker to read it."""
    from django.conf import settings

    count = publish_crl(configured_authority(), Path(settings.MQTT_METER_CRL_FILE), revocations)
    if settings.MQTT_BROKER_PID_FILE:
        reload_broker(Path(settings.MQTT_BROKER_PID_FILE))
    return count
