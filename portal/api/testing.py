"""Helpers for API tests: clients for each kind of caller, and objects owned by a consumer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from billing.models import Bill, BillLineItem, OnDemandRead
from commands.models import MeterCommand
from mdms.core.api_tokens import api_token_issue
from mdms.core.models import Account, Tariff
from mdms.core.testing import Person
from monitoring.models import OutageIncident

# Rates so high that no test other than the throttling one is ever throttled, whatever ran before
# in the same minute (the counters live in the shared Redis).
UNTHROTTLED = {"token": "100000/min", "user": "100000/min", "anon": "100000/min"}


def rest_settings(**rates: str) -> dict[str, Any]:
    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**UNTHROTTLED, **rates}}


def session_client(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def token_client(*scopes: str, name: str = "cis") -> APIClient:
    issued = api_token_issue(name=name, scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    return client


@dataclass
class Owned:
    """One of everything that belongs to (or concerns) a consumer, by resource name of the API."""

    ids: dict[str, int]
    markers: list[str]  # strings that only this consumer's objects contain


def make_bill(person: Person, *, version: int = 1, is_current: bool = True) -> Bill:
    bill = Bill.objects.create(
        account=person.account,
        period_start=dt.date(2026, 9, 1),
        period_end=dt.date(2026, 10, 1),
        version=version,
        is_current=is_current,
        currency="EUR",
        import_kwh=Decimal("300"),
        export_kwh=Decimal("0"),
        net_kwh=Decimal("300"),
        estimated_kwh=Decimal("12"),
        estimated_share=Decimal("0.04"),
        multiplier=Decimal("1"),
        determinants={"period_start": "2026-09-01", "period_end": "2026-10-01"},
        total=Decimal("85.00"),
    )
    BillLineItem.objects.create(
        bill=bill,
        position=1,
        code="energy",
        description="Energy",
        quantity=Decimal("300"),
        unit="kWh",
        rate=Decimal("0.25"),
        amount=Decimal("75.00"),
    )
    return bill


def make_owned(person: Person) -> Owned:
    """A bill, an on-demand read, a command to their meter and an outage incident of the person's, besides
    their master data."""
    now = dt.datetime.now(tz=dt.UTC)
    bill = make_bill(person)
    read = OnDemandRead.objects.create(
        command_id=f"cmd-{person.meter.serial}",
        meter=person.meter,
        account=person.account,
        requested_at=now,
        timeout_at=now + dt.timedelta(minutes=5),
    )
    assert person.meter.premise is not None
    incident = OutageIncident.objects.create(feeder=person.meter.premise.feeder, started_at=now, affected_meters=1)
    command = MeterCommand.objects.create(
        command_id=f"cmd-{person.meter.serial}-sync",
        meter=person.meter,
        kind="time_sync",
        not_before=now + dt.timedelta(days=1),
        deadline=now + dt.timedelta(days=2),
        created_at=now,
    )
    # A tariff of the person's own (test consumers otherwise share one): consumers see only their tariffs.
    tariff = Tariff.objects.create(
        code=f"own-{person.account.number.lower()}", name=f"Tariff of {person.account.number}",
        energy_rate_per_kwh=Decimal("0.2"),
    )  # fmt: skip
    Account.objects.filter(pk=person.account.pk).update(tariff=tariff)
    ids = {
        "meters": person.meter.pk,
        "customers": person.customer.pk,
        "accounts": person.account.pk,
        "premises": person.account.premise_id,
        "bills": bill.pk,
        "reads": read.pk,
        "incidents": incident.pk,
        "commands": command.pk,
        "tariffs": tariff.pk,
    }
    markers = [person.meter.serial, person.account.number, person.customer.email, person.account.premise.address,
               tariff.code]  # fmt: skip
    return Owned(ids=ids, markers=markers)
