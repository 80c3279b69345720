"""`make run`'s start-up sequence on a database seeded by an earlier clone (or after `make clean`).

The demo meters exist but var/demo-meters.csv, their only clear passwords, does not: the start
must issue new ones, set them on the broker, and the simulator must then get its readings stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from ingest.testing import RunningWorker, drop_session, wait_for
from mdms.core.models import Meter
from mdms.core.mqtt import broker
from mdms.core.services import mqtt_password_matches
from mdms.core.timeseries import readings as store

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
METERS = 3


@pytest.fixture
def seeded(role_groups: None, tmp_path: Path) -> Iterator[Path]:
    """A demo seeded by "the first clone": its meters have broker accounts with their passwords."""
    credentials = tmp_path / "demo-meters.csv"
    call_command("seed_demo", meters=METERS, credentials_file=credentials, stdout=io.StringIO())
    yield credentials
    with broker.admin_session() as admin:
        admin.run(
            [
                command
                for serial in Meter.objects.values_list("serial", flat=True)
                for command in (
                    {"command": "deleteClient", "username": serial},
                    {"command": "deleteRole", "rolename": broker.meter_role(serial)},
                )
            ]
        )


def test_a_start_without_the_credentials_file_issues_new_ones_and_the_simulator_publishes(seeded: Path) -> None:
    old_hashes = dict(Meter.objects.values_list("serial", "mqtt_password_hash"))
    seeded.unlink()  # `make clean`, or a second clone: var/ is gone, the database is not

    # make run: migrate, mqtt_sync, seed_demo --if-empty, then the simulator (supervise.py).
    call_command("migrate", verbosity=0)
    call_command("mqtt_sync", stdout=io.StringIO())
    out = io.StringIO()
    call_command("seed_demo", meters=METERS, if_empty=True, credentials_file=seeded, stdout=out)
    assert "not seeding" in out.getvalue()
    assert "issued new credentials for 3 demo meters" in out.getvalue()

    raw = seeded.read_bytes()
    assert b"\r" not in raw, "CRLF line endings break `cut -d,`"
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [row["serial"] for row in rows] == ["MTR000001", "MTR000002", "MTR000003"]
    for row in rows:
        meter = Meter.objects.get(serial=row["serial"])
        assert meter.mqtt_password_hash != old_hashes[row["serial"]]
        if row["certificate"]:  # the demo's certificate meters (MTR000003 on) get a new certificate
            assert (seeded.parent / row["certificate"]).exists() and (seeded.parent / row["key"]).exists()
        else:
            assert mqtt_password_matches(row["password"], meter.mqtt_password_hash)

    worker = RunningWorker("test-make-run")
    try:
        call_command(
            "simulate_meters",
            "--credentials",
            str(seeded),
            "--meters",
            "1",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-03",
            "--labels",
            str(seeded.parent / "labels.jsonl"),
            "--no-progress",
            stdout=io.StringIO(),
        )
        meter = Meter.objects.get(serial="MTR000001")
        wait_for(lambda: store.count_stored_readings([meter.pk]) >= 96, 60, "the simulator's readings stored")
    finally:
        worker.stop()
        drop_session(worker.worker.client_id)


def test_a_start_with_the_credentials_file_changes_nothing(seeded: Path) -> None:
    before = seeded.read_bytes()
    hashes = dict(Meter.objects.values_list("serial", "mqtt_password_hash"))
    call_command("seed_demo", meters=METERS, if_empty=True, credentials_file=seeded, stdout=io.StringIO())
    assert seeded.read_bytes() == before
    assert dict(Meter.objects.values_list("serial", "mqtt_password_hash")) == hashes
