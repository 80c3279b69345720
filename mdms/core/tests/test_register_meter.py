"""`register_meter` and the API agree on a meter's install date."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper

from mdms.core.localtime import local_today
from mdms.core.management.commands.register_meter import Command
from mdms.core.models import Meter, Premise
from mdms.core.testing import make_grid
from portal.api.serializers import MeterSerializer


def _help() -> str:
    out = StringIO()
    Command(stdout=OutputWrapper(out)).create_parser("manage.py", "register_meter").print_help(out)
    return " ".join(out.getvalue().split())


@pytest.mark.django_db
def test_a_meter_registered_at_a_premise_is_installed_today_as_the_help_says() -> None:
    premise = Premise.objects.create(feeder=make_grid(), address="3 Hugo Lane", latitude=Decimal("45.7"),
                                     longitude=Decimal("4.8"))  # fmt: skip
    call_command("register_meter", "HUGO0001", "--premise", str(premise.pk), stdout=StringIO())

    assert "default: today, with --premise" in _help()
    assert MeterSerializer(Meter.objects.get(serial="HUGO0001")).data["install_date"] == local_today().isoformat()


@pytest.mark.django_db
def test_a_meter_registered_without_a_premise_has_no_install_date_as_the_help_says() -> None:
    call_command("register_meter", "IRIS0001", stdout=StringIO())

    assert "without a premise the meter is not installed and has no install date" in _help()
    assert MeterSerializer(Meter.objects.get(serial="IRIS0001")).data["install_date"] is None
    with pytest.raises(CommandError, match="--install-date needs --premise"):
        call_command("register_meter", "IRIS0002", "--install-date", str(dt.date(2026, 1, 5)), stdout=StringIO())
