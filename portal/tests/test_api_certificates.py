"""Meter certificates through the REST API: registration with a certificate, a new certificate
revoking the old one, and the errors a CIS can act on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509

from mdms.core import services
from mdms.core.models import AuditLog, Meter, MeterCertificate
from portal.api.testing import rest_settings, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


def test_registering_a_meter_with_a_certificate_returns_its_key_once_and_no_password(alice: Any, settings: Any) -> None:
    client = token_client("meter_admin")

    response = client.post("/api/v1/meters/", {"serial": "API-CERT-1", "credentials": "certificate"}, format="json")

    assert response.status_code == 201
    body = response.json()
    meter = Meter.objects.get(serial="API-CERT-1")
    certificate = x509.load_pem_x509_certificate(body["certificate"]["certificate_pem"].encode())
    assert certificate.subject.rfc4514_string() == "CN=API-CERT-1"
    assert body["certificate"]["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert body["certificate"]["port"] == settings.MQTT_TLS_PORT
    assert body["mqtt"]["password"] is None
    assert meter.mqtt_password_hash == ""
    stored = MeterCertificate.objects.get(meter=meter)
    assert stored.serial_number == body["certificate"]["serial_number"] == f"{certificate.serial_number:X}"
    detail = json.dumps(client.get(f"/api/v1/meters/{meter.pk}/").json())
    assert "PRIVATE KEY" not in detail


def test_a_new_certificate_revokes_the_previous_one_and_is_audited(alice: Any) -> None:
    client = token_client("meter_admin")
    first = services.meter_issue_certificate(meter=alice.meter)

    response = client.post(f"/api/v1/meters/{alice.meter.pk}/certificate/", format="json")

    assert response.status_code == 201
    old = MeterCertificate.objects.get(serial_number=first.serial_hex)
    assert old.revoked_at is not None
    assert old.revocation_reason == MeterCertificate.RevocationReason.SUPERSEDED
    assert (
        MeterCertificate.objects.get(meter=alice.meter, revoked_at__isnull=True).serial_number
        == (response.json()["serial_number"])
    )
    assert AuditLog.objects.filter(action="meter_certificate", target=f"meter:{alice.meter.serial}").exists()


def test_a_certificate_for_a_disabled_meter_is_a_400_with_a_reason(alice: Any) -> None:
    services.meter_disable(meter=alice.meter)

    response = token_client("meter_admin").post(f"/api/v1/meters/{alice.meter.pk}/certificate/", format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "status"
    assert "disabled" in response.json()["error"]["message"]


def test_a_server_without_a_meter_ca_answers_503_and_registers_nothing(alice: Any, settings: Any) -> None:
    settings.MQTT_METER_CA_CERT_FILE = ""
    settings.MQTT_METER_CA_KEY_FILE = ""

    response = token_client("meter_admin").post(
        "/api/v1/meters/", {"serial": "API-CERT-2", "credentials": "certificate"}, format="json"
    )

    assert response.status_code == 503
    assert "MQTT_METER_CA_CERT_FILE" in response.json()["error"]["message"]
    assert not Meter.objects.filter(serial="API-CERT-2").exists()


def test_reading_scopes_cannot_issue_certificates(alice: Any) -> None:
    response = token_client("cis_read").post(f"/api/v1/meters/{alice.meter.pk}/certificate/", format="json")

    assert response.status_code == 403
    assert not MeterCertificate.objects.filter(meter=alice.meter).exists()
