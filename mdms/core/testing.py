"""Small factories for tests across apps: a grid, tariffs, and people with their meters.

Named after people, as in healthchecks' hc/test.py: alice and bob are consumers, olivia an
operator, bill from billing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.contrib.auth.models import User
from django.db import connection

from mdms.core import services
from mdms.core.models import Account, Customer, Feeder, Meter, Premise, Region, Tariff
from mdms.core.roles import Role

_serials = itertools.count(1)


def make_grid(region_code: str = "test") -> Feeder:
    region, _ = Region.objects.get_or_create(code=region_code, defaults={"name": f"Region {region_code}"})
    feeder, _ = Feeder.objects.get_or_create(
        code=f"{region_code}-f1", defaults={"region": region, "name": f"{region_code} feeder 1"}
    )
    return feeder


def make_flat_tariff(rate: str = "0.25") -> Tariff:
    tariff, _ = Tariff.objects.get_or_create(
        code=f"flat-{rate}",
        defaults={"name": f"Flat {rate}", "energy_rate_per_kwh": Decimal(rate), "fixed_monthly_charge": Decimal("10")},
    )
    return tariff


@dataclass
class Person:
    user: User
    customer: Customer
    account: Account
    meter: Meter
    mqtt_password: str


def make_consumer(
    username: str,
    *,
    feeder: Feeder | None = None,
    tariff: Tariff | None = None,
    move_in: dt.date = dt.date(2025, 1, 1),
    bill_cycle_day: int = 1,
    has_solar: bool = False,
) -> Person:
    feeder = feeder or make_grid()
    premise = Premise.objects.create(
        feeder=feeder, address=f"1 {username.title()} Street", latitude=Decimal("45.75"), longitude=Decimal("4.85")
    )
    customer = services.customer_create(
        name=username.title(), email=f"{username}@example.org", username=username, password=f"{username}-pw"
    )
    account = services.account_open(
        number=f"ACC-{username.upper()}",
        customer=customer,
        premise=premise,
        tariff=tariff or make_flat_tariff(),
        move_in_date=move_in,
        bill_cycle_day=bill_cycle_day,
    )
    meter, credentials = services.meter_register(
        serial=f"T{username.upper()}{next(_serials):04d}", premise=premise, install_date=move_in, has_solar=has_solar
    )
    services.meter_set_status(meter=meter, status=Meter.Status.ACTIVE)
    assert customer.user is not None
    assert credentials.mqtt_password is not None
    return Person(customer.user, customer, account, meter, credentials.mqtt_password)


def make_staff(username: str, role: Role) -> User:
    return services.staff_user_create(username=username, password=f"{username}-pw", role=role)


def start_django_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start Django's settings in a fresh process with these environment variables (how a bad value fails)."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "mdms.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


T = TypeVar("T")


def run_at_once(*calls: Callable[[], T], timeout_s: float = 60.0) -> list[T]:
    """Run the calls in threads of their own, released together (two workers racing), and return
    their results in order. Each thread closes its database connection; the first failure is raised
    here. Tests using it need django_db(transaction=True): the threads see only committed rows."""
    results: dict[int, T] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(len(calls))

    def run(n: int, call: Callable[[], T]) -> None:
        try:
            start.wait(timeout_s)
            results[n] = call()
        except BaseException as exc:  # noqa: BLE001 - raised on the test's thread below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    if failures:
        raise failures[0]
    assert len(results) == len(calls), "a call did not finish in time"
    return [results[n] for n in range(len(calls))]


def broker_accounts_delete(people: list[Person]) -> None:
    """Delete the broker accounts (client and role) of test people's meters: the project's broker is
    shared and persistent, so a test leaves no account behind."""
    from mdms.core.mqtt import broker

    with broker.admin_session() as admin:
        admin.run(
            [
                command
                for person in people
                for command in (
                    {"command": "deleteClient", "username": person.meter.serial},
                    {"command": "deleteRole", "rolename": broker.meter_role(person.meter.serial)},
                )
            ]
        )
