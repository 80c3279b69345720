"""Writes to master data. Views, commands and tasks call these; they never write models directly."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mdms.core.audit import audit_record
from mdms.core.localtime import local_today
from mdms.core.models import Account, AuditLog, Customer, Meter, MeterInstallation, Premise, Tariff, TariffVersion
from mdms.core.roles import Role

# Hooks other parts of the system register to learn that a meter's credentials or status changed
# (the MQTT broker's account sync lives with the MQTT code, and core must not import it).
# Each is called after the transaction commits, with the meter's pk and, when new credentials
# were just issued, the clear password (the broker hashes it itself; it is never stored here).
meter_access_changed_hooks: list[Callable[[int, str | None], None]] = []


def _notify_access_changed(meter: Meter, password: str | None = None) -> None:
    pk = meter.pk
    for hook in meter_access_changed_hooks:
        transaction.on_commit(lambda hook=hook: hook(pk, password))  # type: ignore[misc]


def mqtt_password_hash(password: str, salt: str | None = None) -> str:
    """A salted SHA-256 of a meter password, as `sha256$salt$hex`.

    The passwords are 144-bit random tokens, so a fast hash is enough (a slow KDF protects
    guessable human passwords) and registering 10,000 meters stays quick.
    """
    salt = salt or secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256(f'{salt}${password}'.encode()).hexdigest()}"


def mqtt_password_matches(password: str, stored_hash: str) -> bool:
    try:
        _, salt, _ = stored_hash.split("$")
    except ValueError:
        return False
    return hmac.compare_digest(mqtt_password_hash(password, salt), stored_hash)


@dataclass(frozen=True)
class MeterCredentials:
    """Shown once at registration; only mqtt_password's hash is kept."""

    serial: str
    mqtt_username: str
    mqtt_password: str


@transaction.atomic
def meter_register(
    *,
    serial: str,
    premise: Premise | None = None,
    install_date: dt.date | None = None,
    multiplier: Decimal = Decimal("1"),
    nominal_voltage_v: Decimal = Decimal("230"),
    nominal_frequency_hz: Decimal = Decimal("50"),
    rated_current_a: Decimal = Decimal("60"),
    interval_s: int = 900,
    has_solar: bool = False,
    solar_capacity_kw: Decimal | None = None,
    password: str | None = None,
) -> tuple[Meter, MeterCredentials]:
    """Register a meter and issue its MQTT credentials (the password is returned once)."""
    meter = Meter(
        serial=serial,
        multiplier=multiplier,
        nominal_voltage_v=nominal_voltage_v,
        nominal_frequency_hz=nominal_frequency_hz,
        rated_current_a=rated_current_a,
        interval_s=interval_s,
        has_solar=has_solar,
        solar_capacity_kw=solar_capacity_kw,
        install_date=install_date,
    )
    meter.full_clean(exclude=["premise"])
    meter.save()
    credentials = meter_issue_credentials(meter=meter, password=password)
    if premise is not None:
        meter_install(meter=meter, premise=premise, on=install_date or local_today())
    return meter, credentials


@transaction.atomic
def meter_issue_credentials(*, meter: Meter, password: str | None = None) -> MeterCredentials:
    """New MQTT credentials for a meter (registration, or a lost password). Old ones stop working."""
    password = password or secrets.token_urlsafe(18)
    meter.mqtt_password_hash = mqtt_password_hash(password)
    meter.mqtt_credentials_issued_at = timezone.now()
    meter.save(update_fields=["mqtt_password_hash", "mqtt_credentials_issued_at"])
    _notify_access_changed(meter, password)
    return MeterCredentials(serial=meter.serial, mqtt_username=meter.serial, mqtt_password=password)


@transaction.atomic
def meter_install(*, meter: Meter, premise: Premise, on: dt.date) -> MeterInstallation:
    """Install a meter at a premise, closing its previous installation (history is kept)."""
    MeterInstallation.objects.filter(meter=meter, removed_on__isnull=True).update(removed_on=on)
    installation = MeterInstallation.objects.create(meter=meter, premise=premise, installed_on=on)
    meter.premise = premise
    if meter.install_date is None:
        meter.install_date = on
    meter.save(update_fields=["premise", "install_date"])
    return installation


@transaction.atomic
def meter_remove(*, meter: Meter, on: dt.date) -> None:
    MeterInstallation.objects.filter(meter=meter, removed_on__isnull=True).update(removed_on=on)
    meter.premise = None
    meter.status = Meter.Status.REMOVED
    meter.removal_date = on
    meter.save(update_fields=["premise", "status", "removal_date"])
    _notify_access_changed(meter)


def meter_set_status(*, meter: Meter, status: Meter.Status) -> bool:
    """Change a meter's status; returns False when it already had it (a race-safe swap)."""
    changed = Meter.objects.filter(pk=meter.pk).exclude(status=status).update(status=status)
    if changed:
        meter.status = status
        _notify_access_changed(meter)
    return bool(changed)


def meter_disable(*, meter: Meter) -> bool:
    return meter_set_status(meter=meter, status=Meter.Status.DISABLED)


def meter_enable(*, meter: Meter) -> bool:
    return meter_set_status(meter=meter, status=Meter.Status.ACTIVE)


@transaction.atomic
def customer_create(
    *, name: str, email: str = "", phone: str = "", username: str | None = None, password: str | None = None
) -> Customer:
    """A customer, with a consumer login when a username is given."""
    user = None
    if username:
        user = User.objects.create_user(username=username, email=email, password=password)
        user.groups.add(Group.objects.get(name=Role.CONSUMER))
    return Customer.objects.create(name=name, email=email, phone=phone, user=user)


def account_open(
    *,
    number: str,
    customer: Customer,
    premise: Premise,
    tariff: Tariff,
    move_in_date: dt.date,
    bill_cycle_day: int = 1,
) -> Account:
    account = Account(
        number=number,
        customer=customer,
        premise=premise,
        tariff=tariff,
        move_in_date=move_in_date,
        bill_cycle_day=bill_cycle_day,
    )
    account.full_clean()
    account.save()
    return account


def staff_user_create(*, username: str, password: str, role: Role, email: str = "") -> User:
    user = User.objects.create_user(username=username, password=password, email=email, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@transaction.atomic
def tariff_version_create(
    *,
    tariff: Tariff,
    effective_from: dt.date,
    fixed_monthly_charge: Decimal,
    energy_rate_per_kwh: Decimal | None = None,
    demand_charge_per_kw: Decimal = Decimal("0"),
    export_credit_per_kwh: Decimal = Decimal("0"),
    period_rates: dict[str, Decimal] | None = None,
    note: str = "",
    created_by: User | None = None,
    today: dt.date | None = None,
) -> TariffVersion:
    """A new price version of a tariff, from a future day on (issued bills are never repriced)."""
    today = today or local_today()
    errors: dict[str, str] = {}
    if effective_from <= today:
        errors["effective_from"] = (
            f"Choose a day after today ({today.isoformat()}): bills already issued keep their prices."
        )
    if TariffVersion.objects.filter(tariff=tariff, effective_from=effective_from).exists():
        errors["effective_from"] = f"{tariff.code} already has a version from {effective_from.isoformat()}."
    rates = {key: Decimal(str(value)) for key, value in (period_rates or {}).items()}
    if tariff.is_time_of_use:
        known = {f"{p.day_type}:{p.name}" for p in tariff.tou_periods.all()}
        unknown = sorted(set(rates) - known)
        if unknown:
            errors["period_rates"] = (
                f"{', '.join(unknown)}: not a period of {tariff.code} ({', '.join(sorted(known))})."
            )
        if energy_rate_per_kwh is not None:
            errors["energy_rate_per_kwh"] = "A time-of-use tariff is priced by its periods, not a flat rate."
    elif energy_rate_per_kwh is None:
        errors["energy_rate_per_kwh"] = "A flat tariff needs an energy rate."
    prices = {"fixed_monthly_charge": fixed_monthly_charge, "energy_rate_per_kwh": energy_rate_per_kwh,
              "demand_charge_per_kw": demand_charge_per_kw, "export_credit_per_kwh": export_credit_per_kwh,
              **{f"period_rates[{k}]": v for k, v in rates.items()}}  # fmt: skip
    for name, value in prices.items():
        if value is not None and value < 0:
            errors.setdefault(name.split("[")[0], f"{name} cannot be negative.")
    if errors:
        raise ValidationError(errors)
    version = TariffVersion.objects.create(
        tariff=tariff,
        effective_from=effective_from,
        fixed_monthly_charge=fixed_monthly_charge,
        energy_rate_per_kwh=energy_rate_per_kwh,
        demand_charge_per_kw=demand_charge_per_kw,
        export_credit_per_kwh=export_credit_per_kwh,
        period_rates={key: str(value) for key, value in rates.items()},
        note=note,
        created_by=created_by,
    )
    audit_record(
        actor=created_by,
        action=AuditLog.Action.TARIFF_VERSION,
        target=f"tariff:{tariff.code}",
        detail={"effective_from": effective_from.isoformat(), "version": version.pk},
    )
    return version
