from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from mdms.core import services
from mdms.core.models import Account, Premise
from mdms.core.testing import Person, make_grid


@pytest.mark.django_db
def test_moving_a_meter_keeps_its_history_of_premises(alice: Person) -> None:
    new_home = Premise.objects.create(feeder=make_grid(), address="2 Elsewhere", latitude=45, longitude=4)
    services.meter_install(meter=alice.meter, premise=new_home, on=dt.date(2026, 3, 1))
    history = list(alice.meter.installations.order_by("installed_on").values_list("premise__address", "removed_on"))
    assert history == [(alice.account.premise.address, dt.date(2026, 3, 1)), ("2 Elsewhere", None)]
    alice.meter.refresh_from_db()
    assert alice.meter.premise == new_home


@pytest.mark.django_db
def test_a_bill_cycle_day_past_28_is_refused(alice: Person) -> None:
    with pytest.raises(ValidationError):
        services.account_open(
            number="ACC-BAD", customer=alice.customer, premise=alice.account.premise,
            tariff=alice.account.tariff, move_in_date=dt.date(2026, 1, 1), bill_cycle_day=31,
        )  # fmt: skip
    with pytest.raises(IntegrityError):
        Account.objects.filter(pk=alice.account.pk).update(bill_cycle_day=30)


@pytest.mark.django_db
def test_a_serial_with_topic_wildcards_is_refused(db: None) -> None:
    for serial in ("A/B", "A+B", "A#", "with space"):
        with pytest.raises(ValidationError):
            services.meter_register(serial=serial)


@pytest.mark.django_db
def test_disabling_twice_reports_no_change_the_second_time(alice: Person) -> None:
    assert services.meter_disable(meter=alice.meter) is True
    assert services.meter_disable(meter=alice.meter) is False
