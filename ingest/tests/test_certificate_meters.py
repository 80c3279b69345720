"""Meters on client certificates, end to end: the simulator logs in over TLS with a certificate the
registry issued, the broker takes the identity from it, and the ingest worker stores the readings.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from ingest.simulator.runner import read_credentials
from ingest.testing import RunningWorker, drop_session, wait_for
from mdms.core import services
from mdms.core.models import Meter
from mdms.core.mqtt import broker, certificates
from mdms.core.timeseries import readings as store

# transaction=True: the registration commits, so the broker hook creates the meter's account
# before the simulator connects, and the worker's own connection sees the meter.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def certificate_meter(tmp_path: Path) -> Iterator[tuple[Meter, Path]]:
    """A meter registered with a certificate, and a provisioning CSV naming its files."""
    meter, credentials = services.meter_register(serial=f"TLS-{uuid.uuid4().hex[:10]}", certificate=True)
    services.meter_set_status(meter=meter, status=Meter.Status.ACTIVE)
    assert credentials.certificate is not None
    certificates.write_meter_files(credentials.certificate, tmp_path / "certs")
    csv_path = tmp_path / "meters.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["serial", "password", "certificate", "key"])
        writer.writerow([meter.serial, "", f"certs/{meter.serial}.crt", f"certs/{meter.serial}.key"])
    yield meter, csv_path
    with broker.admin_session() as admin:
        admin.run(
            [
                {"command": "deleteClient", "username": meter.serial},
                {"command": "deleteRole", "rolename": broker.meter_role(meter.serial)},
            ]
        )


@pytest.fixture
def worker(mongo: Any) -> Iterator[None]:
    broker.ensure_ingest_account()
    running = RunningWorker("test-ingest-tls", session_expiry_s=60)
    yield
    running.stop(timeout=10)
    drop_session(running.worker.client_id)


def test_provisioning_rows_with_a_certificate_name_files_beside_the_csv(
    certificate_meter: tuple[Meter, Path],
) -> None:
    meter, csv_path = certificate_meter

    [login] = read_credentials(csv_path)

    assert login.serial == meter.serial
    assert login.uses_certificate
    assert Path(login.certificate_file) == csv_path.parent / "certs" / f"{meter.serial}.crt"
    assert Path(login.key_file).read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_simulated_meter_on_a_certificate_publishes_over_tls_and_its_readings_are_stored(
    certificate_meter: tuple[Meter, Path], worker: None
) -> None:
    meter, csv_path = certificate_meter
    out = StringIO()

    call_command(
        "simulate_meters",
        "--credentials", str(csv_path), "--from", "2026-03-02", "--to", "2026-03-03", "--no-progress",
        stdout=out,
    )  # fmt: skip

    assert "1 of 1 meters connected" in out.getvalue()
    assert (
        f"1 of 1 meters with a client certificate connected over TLS to {settings.MQTT_HOST}:{settings.MQTT_TLS_PORT}"
        in (out.getvalue())
    )
    wait_for(lambda: store.count_distinct_readings([meter.pk]) == 96, what="a day of 96 readings stored")


def test_simulator_reports_a_revoked_certificate_as_not_connected(certificate_meter: tuple[Meter, Path]) -> None:
    meter, csv_path = certificate_meter
    services.meter_issue_certificate(meter=meter)  # the file in the CSV is now the revoked one
    out = StringIO()

    with pytest.raises(Exception, match="no meter could connect"):
        call_command(
            "simulate_meters",
            "--credentials", str(csv_path), "--from", "2026-03-02", "--to", "2026-03-03", "--no-progress",
            stdout=out,
        )  # fmt: skip

    assert "0 of 1 meters connected" in out.getvalue()
