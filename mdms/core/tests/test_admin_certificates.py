"""The admin's certificate action: a ZIP with each meter's certificate, key and CA, downloaded once;
the meter page lists issued certificates but never a key."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from cryptography import x509
from django.contrib.auth.models import User
from django.test import Client

from mdms.core import services
from mdms.core.models import Meter, MeterCertificate

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    User.objects.create_superuser("root", "root@utility.example", "root-pw")
    assert client.login(username="root", password="root-pw")
    return client


def test_issue_certificates_action_downloads_each_meters_files_and_revokes_the_old(
    admin_client: Client, alice: Any
) -> None:
    first = services.meter_issue_certificate(meter=alice.meter)

    response = admin_client.post(
        "/admin/core/meter/", {"action": "issue_certificates", "_selected_action": [alice.meter.pk]}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    serial = alice.meter.serial
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == sorted(
        [f"{serial}/{serial}.crt", f"{serial}/{serial}.key", f"{serial}/ca.crt"]
    )
    certificate = x509.load_pem_x509_certificate(archive.read(f"{serial}/{serial}.crt"))
    assert certificate.subject.rfc4514_string() == f"CN={serial}"
    assert MeterCertificate.objects.get(serial_number=first.serial_hex).revoked_at is not None
    page = admin_client.get(f"/admin/core/meter/{alice.meter.pk}/change/").content.decode()
    assert f"{certificate.serial_number:X}" in page
    assert "PRIVATE KEY" not in page


def test_issue_certificates_action_skips_a_disabled_meter(admin_client: Client, alice: Any) -> None:
    services.meter_disable(meter=alice.meter)

    response = admin_client.post(
        "/admin/core/meter/", {"action": "issue_certificates", "_selected_action": [alice.meter.pk]}, follow=True
    )

    assert "skipped" in response.content.decode()
    assert not MeterCertificate.objects.filter(meter=alice.meter).exists()
    assert Meter.objects.get(pk=alice.meter.pk).status == Meter.Status.DISABLED
