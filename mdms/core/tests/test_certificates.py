"""The meter CA on its own (no broker, no database): certificates, the CRL, the broker's certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mdms import config
from mdms.core.mqtt import certificates
from mdms.core.testing import start_django_with


@pytest.fixture
def ca(tmp_path: Path) -> certificates.Authority:
    return certificates.create_authority(tmp_path / "ca.crt", tmp_path / "ca.key")


def test_a_meter_certificate_names_the_serial_and_is_for_clients_only(ca: certificates.Authority) -> None:
    issued = certificates.issue_certificate(ca, common_name="LY-000123", days=30)
    cert = x509.load_pem_x509_certificate(issued.certificate_pem.encode())

    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.rfc4514_string() == "CN=LY-000123"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert issued.fingerprint_sha256 == certificates.fingerprint(cert)
    assert issued.serial_hex == f"{cert.serial_number:X}"
    assert dt.timedelta(days=29) < issued.not_after - issued.not_before <= dt.timedelta(days=30, minutes=5)


def test_the_development_ca_is_made_once_and_its_key_is_private(tmp_path: Path) -> None:
    first = certificates.load_or_create_authority(tmp_path / "ca" / "ca.crt", tmp_path / "ca" / "ca.key")
    again = certificates.load_or_create_authority(tmp_path / "ca" / "ca.crt", tmp_path / "ca" / "ca.key")

    assert again.certificate == first.certificate
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0


def test_a_key_that_is_not_the_cas_is_refused(tmp_path: Path, ca: certificates.Authority) -> None:
    certificates.create_authority(tmp_path / "other.crt", tmp_path / "other.key")

    with pytest.raises(certificates.CertificateError, match="is not the private key of"):
        certificates.load_authority(tmp_path / "ca.crt", tmp_path / "other.key")


def test_the_crl_keeps_what_it_listed_when_more_is_revoked(tmp_path: Path, ca: certificates.Authority) -> None:
    crl = tmp_path / "crl.pem"
    now = dt.datetime.now(dt.UTC)
    certificates.publish_crl(ca, crl, [certificates.Revocation(11, now)])

    listed = certificates.publish_crl(ca, crl, [certificates.Revocation(22, now)])

    assert listed == 2
    assert certificates.revoked_serials(crl) == {11, 22}
    parsed = x509.load_pem_x509_crl(crl.read_bytes())
    assert parsed.is_signature_valid(ca.private_key.public_key())
    assert not certificates.crl_needs_refresh(ca, crl)


def test_a_crl_from_another_ca_is_replaced_not_merged(tmp_path: Path, ca: certificates.Authority) -> None:
    other = certificates.create_authority(tmp_path / "o.crt", tmp_path / "o.key")
    crl = tmp_path / "crl.pem"
    certificates.publish_crl(other, crl, [certificates.Revocation(99, dt.datetime.now(dt.UTC))])

    assert certificates.crl_needs_refresh(ca, crl)
    certificates.publish_crl(ca, crl, [])
    assert certificates.revoked_serials(crl) == set()


def test_the_broker_certificate_is_issued_once_and_again_for_a_new_ca(
    tmp_path: Path, ca: certificates.Authority
) -> None:
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    names = ["localhost", "127.0.0.1"]

    assert certificates.ensure_broker_certificate(ca, cert, key, names=names)
    assert not certificates.ensure_broker_certificate(ca, cert, key, names=names)
    new_ca = certificates.create_authority(tmp_path / "new.crt", tmp_path / "new.key")
    assert certificates.ensure_broker_certificate(new_ca, cert, key, names=names)

    issued = x509.load_pem_x509_certificate(cert.read_bytes())
    issued.verify_directly_issued_by(new_ca.certificate)
    san = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_meter_ca_settings_need_both_files_and_have_no_production_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_METER_CA_CERT_FILE", "/etc/mdms/ca.crt")
    monkeypatch.delenv("MQTT_METER_CA_KEY_FILE", raising=False)
    with pytest.raises(config.ConfigError, match="MQTT_METER_CA_KEY_FILE"):
        config.meter_ca(debug=True)

    monkeypatch.delenv("MQTT_METER_CA_CERT_FILE")
    assert config.meter_ca(debug=False).cert_file == ""
    assert config.meter_ca(debug=True).create


def test_a_half_configured_meter_ca_stops_django_at_start() -> None:
    result = start_django_with({"MQTT_METER_CA_CERT_FILE": "/etc/mdms/ca.crt", "MQTT_METER_CA_KEY_FILE": ""})

    assert result.returncode != 0
    assert "MQTT_METER_CA_KEY_FILE must be set too" in result.stderr
