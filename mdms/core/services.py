"""Writes to master data. Views, commands and tasks call these; they never write models directly."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mdms.core.audit import audit_record
from mdms.core.localtime import local_day, local_midnight, local_today
from mdms.core.models import (
    Account,
    AuditLog,
    Customer,
    Meter,
    MeterCertificate,
    MeterExchange,
    MeterInstallation,
    MeterMultiplier,
    Premise,
    Tariff,
    TariffVersion,
)

# The certificate authority's crypto (no broker connection, no I/O but the CA's own files).
from mdms.core.mqtt import certificates
from mdms.core.reading_fields import DEFAULT_INTERVAL_S
from mdms.core.roles import Role

# A meter may be registered ahead of its installation, by this much at most: an install date
# beyond it is a typing error (2099), and would make the meter "not yet installed" for years.
INSTALL_AHEAD = dt.timedelta(days=90)
# No smart meter was installed before this.
EARLIEST_INSTALL = dt.date(1990, 1, 1)


def _check_install_date(install_date: dt.date | None) -> None:
    if install_date is None:
        return
    latest = local_today() + INSTALL_AHEAD
    if not EARLIEST_INSTALL <= install_date <= latest:
        raise ValidationError(
            {"install_date": f"An install date lies between {EARLIEST_INSTALL} and {latest} (90 days ahead)."},
            code="out_of_range",
        )


# Hooks other parts of the system register to learn that a meter's credentials or status changed
# (the MQTT broker's account sync lives with the MQTT code, and core must not import it).
# Each is called after the transaction commits, with the meter's pk and, when new credentials
# were just issued, the clear password (the broker hashes it itself; it is never stored here).
meter_access_changed_hooks: list[Callable[[int, str | None], None]] = []
# Hooks told, after the commit, that certificates of this meter were revoked: the MQTT layer
# publishes the CRL, has the broker read it, and ends the sessions opened with the old certificate.
meter_certificates_revoked_hooks: list[Callable[[int], None]] = []


def _notify_access_changed(meter: Meter, password: str | None = None) -> None:
    pk = meter.pk
    for hook in meter_access_changed_hooks:
        transaction.on_commit(lambda hook=hook: hook(pk, password))  # type: ignore[misc]


def _notify_certificates_revoked(meter: Meter) -> None:
    pk = meter.pk
    for hook in meter_certificates_revoked_hooks:
        transaction.on_commit(lambda hook=hook: hook(pk))  # type: ignore[misc]


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
    """Shown once at registration: a password (only its hash is kept) or a certificate and its key.

    A meter registered with a certificate has no password: the broker's TLS listener takes its
    identity from the certificate, and its account cannot log in with a password anywhere.
    """

    serial: str
    mqtt_username: str
    mqtt_password: str | None
    certificate: certificates.IssuedCertificate | None = None


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
    interval_s: int = DEFAULT_INTERVAL_S,
    has_solar: bool = False,
    solar_capacity_kw: Decimal | None = None,
    password: str | None = None,
    certificate: bool = False,
) -> tuple[Meter, MeterCredentials]:
    """Register a meter and issue its MQTT credentials, returned once.

    certificate=True issues a client certificate (CN = serial) from the meter CA instead of a
    password; it raises CertificateError, and registers nothing, when there is no CA.
    """
    _check_install_date(install_date)
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
    if certificate:
        issued = meter_issue_certificate(meter=meter)
        # An account without a password: the broker creates it from the hook, with the meter's ACLs.
        meter.mqtt_credentials_issued_at = timezone.now()
        meter.save(update_fields=["mqtt_credentials_issued_at"])
        _notify_access_changed(meter)
        credentials = MeterCredentials(
            serial=meter.serial, mqtt_username=meter.serial, mqtt_password=None, certificate=issued
        )
    else:
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


def _revoke_certificates(*, meter: Meter, reason: MeterCertificate.RevocationReason) -> int:
    """Revoke the meter's valid certificates (at most one); the hooks publish the CRL after the commit."""
    revoked = MeterCertificate.objects.filter(meter=meter, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revocation_reason=reason
    )
    if revoked:
        _notify_certificates_revoked(meter)
    return revoked


@transaction.atomic
def meter_issue_certificate(*, meter: Meter, days: int | None = None) -> certificates.IssuedCertificate:
    """A new client certificate for the meter (CN = serial), revoking the one it had.

    The returned object holds the private key: show or hand it over once; it is not stored. The
    registry keeps the certificate's serial number, fingerprint and validity.
    """
    # Serialises two issues for one meter; the partial unique constraint is the last guard.
    Meter.objects.select_for_update().filter(pk=meter.pk).first()
    authority = certificates.configured_authority()
    _revoke_certificates(meter=meter, reason=MeterCertificate.RevocationReason.SUPERSEDED)
    issued = certificates.issue_certificate(
        authority, common_name=meter.serial, days=days or settings.MQTT_METER_CERT_DAYS
    )
    MeterCertificate.objects.create(
        meter=meter,
        serial_number=issued.serial_hex,
        fingerprint_sha256=issued.fingerprint_sha256,
        not_before=issued.not_before,
        not_after=issued.not_after,
    )
    return issued


@transaction.atomic
def meters_credentials_reissue(*, meters: list[Meter]) -> list[MeterCredentials]:
    """New MQTT credentials for many meters at once, WITHOUT telling the broker meter by meter.

    For a provisioning file that was lost (a second clone, `make clean`): only hashes are kept, so
    the passwords cannot be recovered, only replaced. The caller applies them to the broker in one
    session (`broker.sync_all(passwords=...)`); a hook per meter would open a session per meter.
    """
    issued_at = timezone.now()
    credentials = []
    for meter in meters:
        password = secrets.token_urlsafe(18)
        meter.mqtt_password_hash = mqtt_password_hash(password)
        meter.mqtt_credentials_issued_at = issued_at
        credentials.append(MeterCredentials(serial=meter.serial, mqtt_username=meter.serial, mqtt_password=password))
    Meter.objects.bulk_update(meters, ["mqtt_password_hash", "mqtt_credentials_issued_at"], batch_size=1000)
    return credentials


@transaction.atomic
def meter_install(*, meter: Meter, premise: Premise, on: dt.date) -> MeterInstallation:
    """Install a meter at a premise, closing its previous installation (history is kept)."""
    _check_install_date(on)
    MeterInstallation.objects.filter(meter=meter, removed_on__isnull=True).update(removed_on=on)
    installation = MeterInstallation.objects.create(meter=meter, premise=premise, installed_on=on)
    meter.premise = premise
    if meter.install_date is None:
        meter.install_date = on
    meter.save(update_fields=["premise", "install_date"])
    return installation


@transaction.atomic
def meter_remove(*, meter: Meter, on: dt.date) -> None:
    """Remove a meter at the start of a local day: readings of intervals ending later are refused."""
    MeterInstallation.objects.filter(meter=meter, removed_on__isnull=True).update(removed_on=on)
    meter.premise = None
    meter.status = Meter.Status.REMOVED
    meter.removal_date = on
    meter.removed_at = local_midnight(on)
    meter.save(update_fields=["premise", "status", "removal_date", "removed_at"])
    _revoke_certificates(meter=meter, reason=MeterCertificate.RevocationReason.METER_REMOVED)
    _notify_access_changed(meter)


@transaction.atomic
def meter_set_status(*, meter: Meter, status: Meter.Status) -> bool:
    """Change a meter's status; returns False when it already had it (a race-safe swap).

    A status the broker refuses (disabled, removed) also revokes the meter's certificate: the
    broker does not ask the account database about a certificate login, so the CRL keeps it out.
    Enabling it again does not bring the certificate back; issue a new one.
    """
    changed = Meter.objects.filter(pk=meter.pk).exclude(status=status).update(status=status)
    if changed:
        meter.status = status
        if status not in Meter.ACCEPTING_STATUSES:
            reason = (
                MeterCertificate.RevocationReason.METER_REMOVED
                if status == Meter.Status.REMOVED
                else MeterCertificate.RevocationReason.METER_DISABLED
            )
            _revoke_certificates(meter=meter, reason=reason)
        _notify_access_changed(meter)
    return bool(changed)


@transaction.atomic
def meter_exchange(
    *,
    premise: Premise,
    old_meter: Meter,
    new_meter_serial: str,
    at: dt.datetime,
    old_final_register_kwh: Decimal,
    new_initial_register_kwh: Decimal,
    work_order: str = "",
    multiplier: Decimal | None = None,
    interval_s: int | None = None,
    register_digits: int | None = None,
    register_decimals: int | None = None,
    password: str | None = None,
    certificate: bool = False,
    now: dt.datetime | None = None,
    actor: Any = None,
    via: str = "",
) -> tuple[MeterExchange, MeterCredentials]:
    """Replace old_meter on premise by a new meter at the moment `at`, in one transaction.

    Both registers are recorded; the new meter is registered and installed from `at`, with MQTT
    credentials returned once (a password, or a certificate with certificate=True); the old one is
    removed at `at` and its broker access ends after the commit. The new meter takes the old one's
    multiplier, interval and register size unless told otherwise.

    Installations are kept by the day (billing sums daily rollups): on the exchange day both meters
    are installed, the old one up to the next midnight and the new one from the day's start, and the
    exact moment is what makes that right: the ingest refuses the old meter's intervals ending after
    `at` (Meter.removed_at) and the new meter's ending at or before it (Meter.installed_at), so each
    meter's day holds only its own part. An exchange at midnight leaves no shared day.
    """
    now = now or timezone.now()
    if at.tzinfo is None:
        raise ValidationError({"at": "The exchange time needs a time zone."})
    if at > now:
        raise ValidationError({"at": "An exchange is recorded after it happened; this time is in the future."})
    if old_final_register_kwh < 0 or new_initial_register_kwh < 0:
        raise ValidationError({"register": "Register readings cannot be negative."})
    # Serialises two exchanges of one meter (a redelivered work order); the status check does the rest.
    locked = Meter.objects.select_for_update().get(pk=old_meter.pk)
    if locked.status == Meter.Status.REMOVED:
        raise ValidationError({"old_meter": f"Meter {locked.serial} is already removed."})
    if locked.premise_id != premise.pk:
        raise ValidationError({"old_meter": f"Meter {locked.serial} is not installed at this premise."})
    installation = MeterInstallation.objects.filter(meter=locked, removed_on__isnull=True).first()
    day = local_day(at)
    at_midnight = at == local_midnight(day)
    served_from = locked.installed_at or (local_midnight(installation.installed_on) if installation else None)
    if served_from is not None and at <= served_from:
        raise ValidationError({"at": f"Meter {locked.serial} was installed at {served_from:%Y-%m-%d %H:%M} UTC."})
    if installation is not None:
        installation.removed_on = day if at_midnight else day + dt.timedelta(days=1)
        installation.save(update_fields=["removed_on"])
    locked.premise = None
    locked.removal_date = day
    locked.removed_at = at
    locked.save(update_fields=["premise", "removal_date", "removed_at"])
    # The status change revokes a certificate and tells the broker, after the commit.
    meter_set_status(meter=locked, status=Meter.Status.REMOVED)
    old_meter.refresh_from_db()

    new_meter, credentials = meter_register(
        serial=new_meter_serial,
        multiplier=locked.multiplier if multiplier is None else multiplier,
        nominal_voltage_v=locked.nominal_voltage_v,
        nominal_frequency_hz=locked.nominal_frequency_hz,
        rated_current_a=locked.rated_current_a,
        interval_s=locked.interval_s if interval_s is None else interval_s,
        has_solar=locked.has_solar,
        solar_capacity_kw=locked.solar_capacity_kw,
        install_date=day,
        password=password,
        certificate=certificate,
    )
    new_meter.register_digits = locked.register_digits if register_digits is None else register_digits
    new_meter.register_decimals = locked.register_decimals if register_decimals is None else register_decimals
    new_meter.installed_at = at
    new_meter.full_clean(exclude=["premise", "serial"])
    new_meter.save(update_fields=["register_digits", "register_decimals", "installed_at"])
    meter_install(meter=new_meter, premise=premise, on=day)
    exchange = MeterExchange.objects.create(
        premise=premise,
        old_meter=locked,
        new_meter=new_meter,
        exchanged_at=at,
        old_final_register_kwh=old_final_register_kwh,
        new_initial_register_kwh=new_initial_register_kwh,
        work_order=work_order,
    )
    # One audit row, whichever door (CLI, admin, API) asked: `actor` is the person or API token.
    audit_record(
        actor=actor,
        action=AuditLog.Action.METER_EXCHANGE,
        target=f"meter:{locked.serial}",
        detail={
            "id": exchange.pk,
            "premise": premise.pk,
            "at": at.isoformat(),
            "old_serial": locked.serial,
            "new_serial": new_meter.serial,
            "old_final_register_kwh": str(old_final_register_kwh),
            "new_initial_register_kwh": str(new_initial_register_kwh),
            "work_order": work_order,
            **({"via": via} if via else {}),
        },
    )
    return exchange, credentials


@transaction.atomic
def meter_set_multiplier(
    *, meter: Meter, multiplier: Decimal, effective_from: dt.date, today: dt.date | None = None
) -> MeterMultiplier:
    """The meter's CT/PT multiplier changes from a local day on (billing scales each day by its own).

    The first change also records the multiplier the meter had until then, from its install day,
    so that the history alone answers for every day. Meter.multiplier follows the value in force today.
    """
    if multiplier <= 0:
        raise ValidationError({"multiplier": "A multiplier is positive."})
    Meter.objects.select_for_update().filter(pk=meter.pk).first()
    if not MeterMultiplier.objects.filter(meter=meter).exists():
        base_day = min(meter.install_date or dt.date(1970, 1, 1), effective_from)
        if base_day < effective_from:
            MeterMultiplier.objects.create(meter=meter, effective_from=base_day, multiplier=meter.multiplier)
    row, _ = MeterMultiplier.objects.update_or_create(
        meter=meter, effective_from=effective_from, defaults={"multiplier": multiplier}
    )
    today = today or local_today()
    current = MeterMultiplier.objects.filter(meter=meter, effective_from__lte=today).order_by("-effective_from").first()
    if current is not None and current.multiplier != meter.multiplier:
        meter.multiplier = current.multiplier
        meter.save(update_fields=["multiplier"])
    return row


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
