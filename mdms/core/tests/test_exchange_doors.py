"""The exchange from the command line and from the admin."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from mdms.core import services
from mdms.core.models import AuditLog, Meter, MeterExchange, MeterMultiplier

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    User.objects.create_superuser("root", "root@utility.example", "root-pw")
    assert client.login(username="root", password="root-pw")
    return client


def test_the_command_exchanges_a_meter_and_prints_the_password_once(alice: Any) -> None:
    out = io.StringIO()
    call_command(
        "meter_exchange", alice.meter.serial, "NEW-ALICE", "--at", "2026-11-20T14:05+01:00",
        "--old-final-register-kwh", "45123.4", "--new-initial-register-kwh", "0.2", "--work-order", "WO-1",
        stdout=out,
    )  # fmt: skip
    password = next(line.split(": ", 1)[1] for line in out.getvalue().splitlines() if line.startswith("password: "))
    assert services.mqtt_password_matches(password, Meter.objects.get(serial="NEW-ALICE").mqtt_password_hash)
    assert MeterExchange.objects.get().work_order == "WO-1"
    assert AuditLog.objects.filter(action=AuditLog.Action.METER_EXCHANGE).count() == 1


def test_the_command_names_what_is_wrong(alice: Any) -> None:
    args = ["--old-final-register-kwh", "1", "--new-initial-register-kwh", "0"]
    with pytest.raises(CommandError, match="no meter NOPE"):
        call_command("meter_exchange", "NOPE", "NEW", "--at", "2026-11-20T14:05+01:00", *args)
    with pytest.raises(CommandError, match="future"):
        call_command("meter_exchange", alice.meter.serial, "NEW", "--at", "2999-01-01T00:00+00:00", *args)
    with pytest.raises(CommandError):  # a time without an offset is refused by the parser
        call_command("meter_exchange", alice.meter.serial, "NEW", "--at", "2026-11-20T14:05", *args)


def test_the_admin_add_form_exchanges_the_meter_and_shows_the_password(admin_client: Client, alice: Any) -> None:
    assert "new_serial" in admin_client.get("/admin/core/meterexchange/add/").content.decode()
    response = admin_client.post(
        "/admin/core/meterexchange/add/",
        {
            "old_meter": alice.meter.pk, "new_serial": "NEW-ALICE", "exchanged_at_0": "2026-11-20",
            "exchanged_at_1": "14:05:00", "old_final_register_kwh": "45123.4", "new_initial_register_kwh": "0.2",
            "work_order": "WO-9",
        },
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    assert "This password is shown only once" in response.content.decode()
    record = MeterExchange.objects.get()
    assert (record.old_meter, record.new_meter.serial) == (alice.meter, "NEW-ALICE")
    assert Meter.objects.get(pk=alice.meter.pk).status == Meter.Status.REMOVED
    # The record is read only afterwards: the page opens, and a change is not accepted.
    assert admin_client.get(f"/admin/core/meterexchange/{record.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/core/meterexchange/{record.pk}/change/", {"work_order": "X"}).status_code == 403
    assert MeterExchange.objects.get().work_order == "WO-9"


def test_the_admin_refuses_to_exchange_a_removed_meter(admin_client: Client, alice: Any) -> None:
    services.meter_remove(meter=alice.meter, on=alice.meter.install_date)
    response = admin_client.post(
        "/admin/core/meterexchange/add/",
        {"old_meter": alice.meter.pk, "new_serial": "NEW-ALICE", "exchanged_at_0": "2026-11-20",
         "exchanged_at_1": "14:05:00", "old_final_register_kwh": "1", "new_initial_register_kwh": "0"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "is not installed on a premise" in response.content.decode()
    assert not MeterExchange.objects.exists()


def test_the_admin_records_a_multiplier_change_from_a_day(admin_client: Client, alice: Any) -> None:
    response = admin_client.post(
        "/admin/core/metermultiplier/add/",
        {"meter": alice.meter.pk, "effective_from": "2026-09-10", "multiplier": "40"},
    )
    assert response.status_code == 302
    assert list(MeterMultiplier.objects.filter(meter=alice.meter).values_list("multiplier", flat=True)) == [
        Decimal("1.000"),
        Decimal("40.000"),
    ]
