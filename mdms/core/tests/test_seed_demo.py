from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from mdms.core.models import Account, Customer, Feeder, Meter, Premise, Region, Tariff
from mdms.core.services import mqtt_password_matches


def _snapshot() -> list[tuple[object, ...]]:
    return [
        *Region.objects.values_list("code", "name"),
        *Feeder.objects.values_list("code", "region__code", "capacity_kw"),
        *Premise.objects.order_by("id").values_list("address", "latitude", "longitude", "feeder__code"),
        *Meter.objects.values_list("serial", "has_solar", "solar_capacity_kw", "status", "premise__address"),
        *Account.objects.values_list("number", "customer__name", "tariff__code", "bill_cycle_day"),
    ]


def _seed(tmp_path: Path, meters: int = 30) -> str:
    out = io.StringIO()
    call_command("seed_demo", meters=meters, credentials_file=tmp_path / "creds.csv", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_builds_the_demo_and_prints_the_logins(tmp_path: Path) -> None:
    output = _seed(tmp_path)
    assert Meter.objects.count() == 30
    assert Premise.objects.count() == 30
    assert Region.objects.count() >= 3
    assert Feeder.objects.count() >= 6
    assert Meter.objects.filter(has_solar=True).exists()
    assert Account.objects.values("bill_cycle_day").distinct().count() >= 2
    assert Tariff.objects.count() >= 3
    for login in ("alice", "olivia", "bill"):
        assert login in output
    alice = Customer.objects.get(user__username="alice")
    assert alice.accounts.count() == 1


@pytest.mark.django_db
def test_seed_demo_is_deterministic(tmp_path: Path) -> None:
    _seed(tmp_path)
    first = _snapshot()
    for model in (Account, Meter, Customer, Premise, Feeder, Region, Tariff):
        model.objects.all().delete()
    from django.contrib.auth.models import User

    User.objects.all().delete()
    _seed(tmp_path)
    assert _snapshot() == first


@pytest.mark.django_db
def test_seed_demo_keeps_only_hashes_and_writes_a_provisioning_file(tmp_path: Path) -> None:
    _seed(tmp_path, meters=5)
    rows = list(csv.DictReader((tmp_path / "creds.csv").open()))
    assert len(rows) == 5
    meter = Meter.objects.get(serial=rows[0]["serial"])
    assert rows[0]["password"] not in meter.mqtt_password_hash
    assert mqtt_password_matches(rows[0]["password"], meter.mqtt_password_hash)


@pytest.mark.django_db
def test_seed_demo_refuses_a_full_database_unless_asked_to_skip(tmp_path: Path) -> None:
    _seed(tmp_path, meters=3)
    with pytest.raises(CommandError):
        _seed(tmp_path, meters=3)
    out = io.StringIO()
    call_command("seed_demo", meters=3, if_empty=True, credentials_file=tmp_path / "c.csv", stdout=out)
    assert "not seeding" in out.getvalue()
    assert Meter.objects.count() == 3


@pytest.mark.django_db
def test_the_admin_lists_the_seeded_meters(tmp_path: Path, client: Client) -> None:
    _seed(tmp_path, meters=5)
    assert client.login(username="admin", password="admin-demo-2026")
    response = client.get("/admin/core/meter/")
    assert response.status_code == 200
    for serial in Meter.objects.values_list("serial", flat=True):
        assert serial in response.content.decode()
    assert client.get("/admin/core/meter/?q=MTR000003").content.decode().count("MTR000003") >= 1


@pytest.mark.django_db
def test_seed_demo_puts_three_meters_on_client_certificates(tmp_path: Path) -> None:
    _seed(tmp_path, meters=6)
    rows = list(csv.DictReader((tmp_path / "creds.csv").open()))

    on_certificates = [row for row in rows if row["certificate"]]
    assert [row["serial"] for row in on_certificates] == [rows[i]["serial"] for i in (2, 3, 4)]
    for row in on_certificates:
        meter = Meter.objects.get(serial=row["serial"])
        assert row["password"] == "" and meter.mqtt_password_hash == ""
        assert meter.certificates.filter(revoked_at__isnull=True).count() == 1
        assert (tmp_path / row["certificate"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert (tmp_path / row["key"]).stat().st_mode & 0o077 == 0
    assert all(row["password"] for row in rows if not row["certificate"])


@pytest.mark.django_db
def test_a_demo_seeded_before_certificates_gets_them_on_the_next_run(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("seed_demo", meters=5, certificate_meters=0, credentials_file=tmp_path / "creds.csv", stdout=out)
    assert not any(row["certificate"] for row in csv.DictReader((tmp_path / "creds.csv").open()))

    call_command("seed_demo", meters=5, if_empty=True, credentials_file=tmp_path / "creds.csv", stdout=out)
    again = io.StringIO()
    call_command("seed_demo", meters=5, if_empty=True, credentials_file=tmp_path / "creds.csv", stdout=again)

    rows = list(csv.DictReader((tmp_path / "creds.csv").open()))
    assert [bool(row["certificate"]) for row in rows] == [False, False, True, True, True]
    assert "now use client certificates" not in again.getvalue()
