"""Meter exchange: both registers kept, the new meter registered with credentials, the old one removed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from mdms.core import services
from mdms.core.localtime import local_at
from mdms.core.models import Meter, MeterExchange, MeterInstallation, MeterMultiplier

pytestmark = pytest.mark.django_db

AT = local_at(dt.date(2026, 9, 15), 14)


def exchange(person: Any, serial: str = "NEW-ALICE", at: dt.datetime = AT) -> tuple[MeterExchange, Any]:
    return services.meter_exchange(
        premise=person.account.premise,
        old_meter=person.meter,
        new_meter_serial=serial,
        at=at,
        old_final_register_kwh=Decimal("12345.600"),
        new_initial_register_kwh=Decimal("0.200"),
        work_order="WO-1",
    )


def test_an_exchange_records_both_registers_and_issues_the_new_meters_password(alice: Any) -> None:
    record, credentials = exchange(alice)
    assert (record.old_final_register_kwh, record.new_initial_register_kwh) == (Decimal("12345.600"), Decimal("0.200"))
    assert record.exchanged_at == AT and record.work_order == "WO-1"
    new = Meter.objects.get(serial="NEW-ALICE")
    assert credentials.mqtt_username == "NEW-ALICE" and credentials.mqtt_password
    assert services.mqtt_password_matches(credentials.mqtt_password, new.mqtt_password_hash)
    assert (new.premise, new.installed_at, new.install_date) == (alice.account.premise, AT, dt.date(2026, 9, 15))
    assert new.multiplier == alice.meter.multiplier and new.interval_s == alice.meter.interval_s


def test_the_old_meter_is_removed_at_the_moment_and_keeps_its_history(alice: Any) -> None:
    exchange(alice)
    old = Meter.objects.get(pk=alice.meter.pk)
    assert old.status == Meter.Status.REMOVED and not old.can_connect
    assert (old.premise, old.removed_at, old.removal_date) == (None, AT, dt.date(2026, 9, 15))
    # Both installations cover the exchange day: the ingest keeps each meter to its side of AT.
    rows = MeterInstallation.objects.filter(premise=alice.account.premise).order_by("installed_on")
    assert [(r.meter.serial, r.installed_on, r.removed_on) for r in rows] == [
        (alice.meter.serial, dt.date(2025, 1, 1), dt.date(2026, 9, 16)),
        ("NEW-ALICE", dt.date(2026, 9, 15), None),
    ]


def test_an_exchange_at_midnight_leaves_no_shared_day(alice: Any) -> None:
    exchange(alice, at=local_at(dt.date(2026, 9, 15)))
    old = MeterInstallation.objects.get(meter=alice.meter)
    assert old.removed_on == dt.date(2026, 9, 15)


def test_the_old_meters_broker_access_ends_when_the_exchange_commits(
    django_capture_on_commit_callbacks: Any, alice: Any
) -> None:
    told: list[tuple[int, str | None]] = []
    services.meter_access_changed_hooks.append(lambda pk, password: told.append((pk, password)))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _, credentials = exchange(alice)
    finally:
        services.meter_access_changed_hooks.pop()
    new = Meter.objects.get(serial="NEW-ALICE")
    assert (alice.meter.pk, None) in told
    assert (new.pk, credentials.mqtt_password) in told


def test_a_removed_meter_cannot_be_exchanged_twice(alice: Any) -> None:
    exchange(alice)
    with pytest.raises(ValidationError, match="already removed"):
        exchange(alice, serial="NEWER-ALICE")
    assert not Meter.objects.filter(serial="NEWER-ALICE").exists()


def test_an_exchange_of_a_meter_on_another_premise_is_refused(alice: Any, bob: Any) -> None:
    with pytest.raises(ValidationError, match="not installed at this premise"):
        services.meter_exchange(
            premise=bob.account.premise, old_meter=alice.meter, new_meter_serial="X1", at=AT,
            old_final_register_kwh=Decimal(1), new_initial_register_kwh=Decimal(0),
        )  # fmt: skip


def test_an_exchange_in_the_future_or_without_a_zone_is_refused(alice: Any) -> None:
    with pytest.raises(ValidationError, match="future"):
        exchange(alice, at=dt.datetime.now(tz=dt.UTC) + dt.timedelta(hours=1))
    with pytest.raises(ValidationError, match="time zone"):
        exchange(alice, at=dt.datetime(2026, 9, 15, 14))
    assert Meter.objects.get(pk=alice.meter.pk).status != Meter.Status.REMOVED


def test_a_taken_serial_rolls_the_whole_exchange_back(alice: Any, bob: Any) -> None:
    with pytest.raises(ValidationError):
        exchange(alice, serial=bob.meter.serial)
    old = Meter.objects.get(pk=alice.meter.pk)
    assert old.status != Meter.Status.REMOVED and old.premise == alice.account.premise
    assert not MeterExchange.objects.exists()


def test_a_multiplier_change_keeps_the_old_value_for_the_days_before_it(alice: Any) -> None:
    services.meter_set_multiplier(
        meter=alice.meter, multiplier=Decimal("40"), effective_from=dt.date(2026, 9, 10), today=dt.date(2026, 10, 1)
    )
    history = list(MeterMultiplier.objects.filter(meter=alice.meter).values_list("effective_from", "multiplier"))
    assert history == [(dt.date(2025, 1, 1), Decimal("1.000")), (dt.date(2026, 9, 10), Decimal("40.000"))]
    alice.meter.refresh_from_db()
    assert alice.meter.multiplier == Decimal("40")


def test_a_multiplier_from_a_future_day_leaves_todays_in_place(alice: Any) -> None:
    services.meter_set_multiplier(
        meter=alice.meter, multiplier=Decimal("40"), effective_from=dt.date(2026, 12, 1), today=dt.date(2026, 10, 1)
    )
    alice.meter.refresh_from_db()
    assert alice.meter.multiplier == Decimal("1")
