"""Master data in PostgreSQL: the grid, premises, customers, accounts, meters and tariffs.

Readings never live here: they are in MongoDB (mdms.core.timeseries), keyed by Meter.pk, which
never changes for a meter, so the time-series metaField stays stable for the meter's life.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from mdms.core import registers
from mdms.core.reading_fields import DEFAULT_INTERVAL_S


class Region(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Feeder(models.Model):
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="feeders")
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    # The feeder's thermal rating: demand forecasts warn when a peak approaches it.
    capacity_kw = models.DecimalField(max_digits=10, decimal_places=1, null=True, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.region.code})"


class Premise(models.Model):
    """A service point: where energy is delivered and a meter is installed."""

    feeder = models.ForeignKey(Feeder, on_delete=models.PROTECT, related_name="premises")
    address = models.CharField(max_length=200)
    city = models.CharField(max_length=80, blank=True)
    postcode = models.CharField(max_length=16, blank=True)
    latitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-90), MaxValueValidator(90)]
    )
    longitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-180), MaxValueValidator(180)]
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.address

    @property
    def region(self) -> Region:
        return self.feeder.region


class Customer(models.Model):
    name = models.CharField(max_length=160)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    # The consumer login, if the customer has one. Everything a consumer sees is filtered by it.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="customer"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Tariff(models.Model):
    """Prices. Energy is charged at energy_rate_per_kwh, or by time-of-use periods when it has any."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    currency = models.CharField(max_length=3, default="EUR")
    fixed_monthly_charge = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    energy_rate_per_kwh = models.DecimalField(
        max_digits=8, decimal_places=5, null=True, blank=True, help_text="Flat rate; leave empty for time of use."
    )
    demand_charge_per_kw = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("0"))
    export_credit_per_kwh = models.DecimalField(max_digits=8, decimal_places=5, default=Decimal("0"))

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_time_of_use(self) -> bool:
        return self.energy_rate_per_kwh is None


class TariffVersion(models.Model):
    """The tariff's prices from `effective_from` until the next version's: a price change, kept.

    A tariff without versions is priced from its own fields. Once it has versions, the version in
    effect on each day of a bill prices that day's usage, and a change inside a bill period prorates
    (billing.pricing.line_items_by_version). `period_rates` prices the time-of-use periods by
    "day_type:name" (weekday:peak); a period it does not name keeps the rate of its TouPeriod.
    """

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="versions")
    effective_from = models.DateField(help_text="The first local day these prices apply to.")
    fixed_monthly_charge = models.DecimalField(max_digits=10, decimal_places=2)
    energy_rate_per_kwh = models.DecimalField(
        max_digits=8, decimal_places=5, null=True, blank=True, help_text="Flat rate; empty for time of use."
    )
    demand_charge_per_kw = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("0"))
    export_credit_per_kwh = models.DecimalField(max_digits=8, decimal_places=5, default=Decimal("0"))
    period_rates = models.JSONField(default=dict, blank=True, help_text='{"weekday:peak": "0.2450", ...}')
    note = models.CharField(max_length=200, blank=True, help_text="Why the prices change (a regulator's decision...).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tariff", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["tariff", "effective_from"], name="tariff_version_one_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.tariff.code} from {self.effective_from}"


class TouPeriod(models.Model):
    """A time-of-use band: on `day_type` days, from start to end (local time) at rate_per_kwh.

    end_time 00:00 means midnight at the end of the day. Periods of one day type must not overlap;
    billing checks that every hour of every day type is covered by exactly one period.
    """

    class DayType(models.TextChoices):
        WEEKDAY = "weekday", "Weekday"
        WEEKEND = "weekend", "Weekend and holiday"

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="tou_periods")
    name = models.CharField(max_length=40, help_text="peak, off-peak, shoulder, ...")
    day_type = models.CharField(max_length=10, choices=DayType.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()
    rate_per_kwh = models.DecimalField(max_digits=8, decimal_places=5)

    class Meta:
        ordering = ["tariff", "day_type", "start_time"]

    def __str__(self) -> str:
        return f"{self.tariff.code} {self.day_type} {self.name} {self.start_time:%H:%M}-{self.end_time:%H:%M}"

    def covers_hour(self, hour: int) -> bool:
        start = self.start_time.hour
        end = self.end_time.hour or 24
        if start < end:
            return start <= hour < end
        return hour >= start or hour < end  # wraps midnight


class Holiday(models.Model):
    """A public holiday: billed with weekend time-of-use periods."""

    date = models.DateField(unique=True)
    name = models.CharField(max_length=80)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class Account(models.Model):
    number = models.CharField(max_length=20, unique=True, validators=[RegexValidator(r"^[A-Z0-9-]+$")])
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="accounts")
    premise = models.ForeignKey(Premise, on_delete=models.PROTECT, related_name="accounts")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="accounts")
    # Day of the month the account is billed; 1 is the monthly run on the 1st. At most 28, so
    # that every month has the day.
    bill_cycle_day = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(28)]
    )
    move_in_date = models.DateField()
    move_out_date = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(bill_cycle_day__gte=1) & Q(bill_cycle_day__lte=28), name="account_bill_cycle_day_1_28"
            ),
            models.CheckConstraint(
                condition=Q(move_out_date__isnull=True) | Q(move_out_date__gte=models.F("move_in_date")),
                name="account_move_out_after_move_in",
            ),
        ]
        indexes = [models.Index(fields=["bill_cycle_day"], name="account_cycle_day_idx")]

    def __str__(self) -> str:
        return self.number

    def is_active_on(self, day: dt.date) -> bool:
        return self.move_in_date <= day and (self.move_out_date is None or day < self.move_out_date)


class Meter(models.Model):
    class Status(models.TextChoices):
        REGISTERED = "registered", "Registered"  # credentials issued, not yet heard from
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"  # refused by the broker; may be enabled again
        REMOVED = "removed", "Removed"  # taken off the premise; kept for its history

    class Relay(models.TextChoices):
        """The supply relay: changed only by a completed disconnect or reconnect command."""

        CONNECTED = "connected", "Connected"
        DISCONNECTED = "disconnected", "Disconnected"
        ARMED = "armed", "Armed (the customer closes it at the meter)"

    # The statuses whose meters the broker lets in and whose data the ingest and the data hub pull
    # accept; disabled and removed meters' data is refused.
    ACCEPTING_STATUSES = frozenset({Status.REGISTERED, Status.ACTIVE})

    serial = models.CharField(
        max_length=32,
        unique=True,
        # The serial is also the MQTT username and a topic level: no wildcards, slashes or spaces.
        validators=[RegexValidator(r"^[A-Za-z0-9_-]+$", "Letters, digits, '-' and '_' only.")],
    )
    premise = models.ForeignKey(
        Premise, on_delete=models.PROTECT, related_name="meters", null=True, blank=True,
        help_text="Where the meter is installed now; the history is in MeterInstallation.",
    )  # fmt: skip
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REGISTERED)
    multiplier = models.DecimalField(
        max_digits=8, decimal_places=3, default=Decimal("1"), help_text="CT/PT ratio applied to energy."
    )
    nominal_voltage_v = models.DecimalField(max_digits=6, decimal_places=1, default=Decimal("230"))
    nominal_frequency_hz = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("50"))
    rated_current_a = models.DecimalField(max_digits=6, decimal_places=1, default=Decimal("60"))
    interval_s = models.PositiveIntegerField(default=DEFAULT_INTERVAL_S)
    install_date = models.DateField(null=True, blank=True)
    removal_date = models.DateField(null=True, blank=True)
    # The exact moments of an exchange (mdms.core.services.meter_exchange); empty for meters
    # installed or removed by the day. The ingest refuses readings of intervals ending at or before
    # installed_at and after removed_at, so that two meters exchanged mid-day never both count a
    # stretch of time, and billing can take each meter's whole exchange day.
    installed_at = models.DateTimeField(null=True, blank=True, editable=False)
    removed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The register's capacity: register_digits digits of which register_decimals after the point
    # (6 and 1: 99999.9 kWh, then 0.0). mdms.core.registers reads a wrap from it.
    register_digits = models.PositiveSmallIntegerField(
        default=6, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    register_decimals = models.PositiveSmallIntegerField(default=1, validators=[MaxValueValidator(6)])
    relay_state = models.CharField(max_length=12, choices=Relay.choices, default=Relay.CONNECTED, editable=False)
    has_solar = models.BooleanField(default=False)
    solar_capacity_kw = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    # The MQTT password is shown once at registration; only its hash is kept.
    mqtt_password_hash = models.CharField(max_length=200, blank=True, editable=False)
    mqtt_credentials_issued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["serial"]
        indexes = [
            # By status, and within it by interval: the silent-meter check asks every page view for the
            # shortest interval of the active meters, one index probe instead of a scan of the fleet.
            models.Index(fields=["status", "interval_s"], name="meter_status_interval_idx"),
            # The few meters whose supply was cut: the operator's map draws each, and without this
            # index finding them scanned the fleet (16 ms a page at 100,000 meters).
            models.Index(
                fields=["relay_state"], name="meter_disconnected_idx", condition=Q(relay_state="disconnected")
            ),
        ]

    def __str__(self) -> str:
        return self.serial

    def clean(self) -> None:
        if self.removal_date and self.install_date and self.removal_date < self.install_date:
            raise ValidationError({"removal_date": "Removal cannot come before installation."})

    @property
    def can_connect(self) -> bool:
        return self.status in self.ACCEPTING_STATUSES

    @property
    def register_capacity_kwh(self) -> float:
        """The register's first unshowable value: it reads 0 there (99999.9 + 0.1 for 6 and 1)."""
        return registers.capacity_kwh(digits=self.register_digits, decimals=self.register_decimals)


class MeterCertificate(models.Model):
    """A client certificate issued to a meter by the meter CA (mdms.core.mqtt.certificates).

    Its private key was handed over once at issue and is not kept anywhere. A meter has at most one
    valid (unrevoked) certificate: issuing another, disabling or removing the meter revokes it, and
    the revocation goes into the CRL the broker's TLS listener reads.
    """

    class RevocationReason(models.TextChoices):
        SUPERSEDED = "superseded", "Superseded by a new certificate"
        METER_DISABLED = "meter_disabled", "Meter disabled"
        METER_REMOVED = "meter_removed", "Meter removed"

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="certificates")
    # Upper-case hex, as `openssl x509 -serial` prints it; X.509 serials reach 159 bits.
    serial_number = models.CharField(max_length=40, unique=True)
    fingerprint_sha256 = models.CharField(max_length=64, unique=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    issued_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=20, choices=RevocationReason.choices, blank=True)

    class Meta:
        ordering = ["meter", "-issued_at"]
        constraints = [
            # The guard behind "re-issuing revokes the old one": two issues at once cannot both stand.
            models.UniqueConstraint(
                fields=["meter"], condition=models.Q(revoked_at__isnull=True), name="one_valid_certificate_per_meter"
            ),
        ]
        # The CRL is rebuilt from the revoked, unexpired certificates.
        indexes = [models.Index(fields=["revoked_at", "not_after"], name="meter_cert_revoked_idx")]

    def __str__(self) -> str:
        return f"{self.meter_id} certificate {self.serial_number}"

    @property
    def is_valid(self) -> bool:
        return self.revoked_at is None


class MeterInstallation(models.Model):
    """The history of a meter's premises: one row per installation, the open one is current."""

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="installations")
    premise = models.ForeignKey(Premise, on_delete=models.PROTECT, related_name="installations")
    installed_on = models.DateField()
    removed_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["meter", "installed_on"]
        constraints = [
            models.UniqueConstraint(
                fields=["meter"], condition=Q(removed_on__isnull=True), name="one_open_installation_per_meter"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter} at {self.premise} from {self.installed_on}"


class MeterMultiplier(models.Model):
    """The history of a meter's CT/PT multiplier: each row is in force from its day (local) on.

    Billing scales every day by the row in force on it (a day before the first row takes
    Meter.multiplier). Written by mdms.core.services.meter_set_multiplier, which also keeps
    Meter.multiplier at the value in force today.
    """

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="multipliers")
    effective_from = models.DateField()
    multiplier = models.DecimalField(max_digits=8, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["meter", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "effective_from"], name="one_multiplier_per_meter_and_day"),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} x{self.multiplier} from {self.effective_from}"


class MeterExchange(models.Model):
    """One meter replaced by another on a premise at a moment, with both registers read there.

    The old meter's final register and the new meter's initial one are the bridge a register-based
    consumption needs: nothing is derived across two meters from their raw register values.
    """

    premise = models.ForeignKey(Premise, on_delete=models.PROTECT, related_name="exchanges")
    old_meter = models.OneToOneField(Meter, on_delete=models.PROTECT, related_name="exchanged_out")
    new_meter = models.OneToOneField(Meter, on_delete=models.PROTECT, related_name="exchanged_in")
    exchanged_at = models.DateTimeField()
    old_final_register_kwh = models.DecimalField(max_digits=14, decimal_places=3)
    new_initial_register_kwh = models.DecimalField(max_digits=14, decimal_places=3)
    work_order = models.CharField(max_length=64, blank=True, help_text="The CIS field work order, if any.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-exchanged_at"]
        indexes = [models.Index(fields=["premise", "exchanged_at"], name="exchange_premise_at_idx")]

    def __str__(self) -> str:
        return f"{self.old_meter} -> {self.new_meter} at {self.exchanged_at:%Y-%m-%d %H:%M}"


# API tokens and the audit log live in their own module; importing them here registers them as core models.
from mdms.core.models_api import ApiToken, AuditLog  # noqa: E402

__all__ = [
    "Account",
    "ApiToken",
    "AuditLog",
    "Customer",
    "Feeder",
    "Holiday",
    "Meter",
    "MeterExchange",
    "MeterInstallation",
    "MeterMultiplier",
    "Premise",
    "Region",
    "Tariff",
    "TouPeriod",
]
