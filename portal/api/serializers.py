"""Shapes of the API's objects. Every row names its object in words too (serial, account number)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Bill, BillLineItem, OnDemandRead
from commands.models import KIND_CHOICES, MeterCommand, MeterCommandEvent
from mdms.core import reading_quality
from mdms.core.models import Account, Customer, Meter, Premise, Tariff, TariffVersion, TouPeriod
from mdms.core.reading_fields import DEFAULT_INTERVAL_S
from monitoring.models import IncidentMeter, OutageIncident
from portal.api.ranges import UtcDateTimeField


class MeterSerializer(serializers.ModelSerializer[Meter]):
    feeder = serializers.CharField(source="premise.feeder.code", read_only=True, allow_null=True, default=None)
    region = serializers.CharField(source="premise.feeder.region.code", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Meter
        fields = [
            "id",
            "serial",
            "status",
            "premise",
            "feeder",
            "region",
            "multiplier",
            "nominal_voltage_v",
            "nominal_frequency_hz",
            "rated_current_a",
            "interval_s",
            "install_date",
            "removal_date",
            "has_solar",
            "solar_capacity_kw",
            "mqtt_credentials_issued_at",
            "created_at",
        ]
        read_only_fields = fields


class MeterRegisterSerializer(serializers.Serializer[Any]):
    serial = serializers.RegexField(r"^[A-Za-z0-9_-]+$", max_length=32)
    premise = serializers.PrimaryKeyRelatedField(queryset=Premise.objects.all(), required=False, allow_null=True)
    install_date = serializers.DateField(required=False, allow_null=True)
    multiplier = serializers.DecimalField(
        max_digits=8, decimal_places=3, min_value=Decimal("0.001"), default=Decimal(1)
    )
    nominal_voltage_v = serializers.DecimalField(
        max_digits=6, decimal_places=1, min_value=Decimal("1"), default=Decimal(230)
    )
    nominal_frequency_hz = serializers.ChoiceField(choices=["50", "60"], default="50")
    rated_current_a = serializers.DecimalField(
        max_digits=6, decimal_places=1, min_value=Decimal("1"), default=Decimal(60)
    )
    interval_s = serializers.ChoiceField(choices=[60, 300, 600, 900, 1800, 3600], default=DEFAULT_INTERVAL_S)
    has_solar = serializers.BooleanField(default=False)
    solar_capacity_kw = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=Decimal("0"), required=False, allow_null=True
    )
    credentials = serializers.ChoiceField(
        choices=["password", "certificate"],
        default="password",
        help_text="password: an MQTT password. certificate: a client certificate (CN = serial) for the "
        "broker's TLS listener, and no password.",
    )

    def validate_serial(self, value: str) -> str:
        if Meter.objects.filter(serial=value).exists():
            raise serializers.ValidationError("A meter with this serial is registered already.", code="unique")
        return value


class AwareDateTimeField(UtcDateTimeField):
    """An instant that must carry its UTC offset: a field record without one is ambiguous."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        try:
            parsed = parse_datetime(value) if isinstance(value, str) else None
        except ValueError:  # well-formed but impossible (month 13): the parent names it
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            raise serializers.ValidationError("Give the time with its UTC offset (Z or +01:00).", code="invalid")
        return super().to_internal_value(value)


class MeterExchangeSerializer(serializers.Serializer[Any]):
    """A meter exchange from a field work order: the new meter, the moment and both registers."""

    new_serial = serializers.RegexField(r"^[A-Za-z0-9_-]+$", max_length=32)
    at = AwareDateTimeField(help_text="When the meter was exchanged, with a UTC offset; not in the future.")
    old_final_register_kwh = serializers.DecimalField(max_digits=14, decimal_places=3, min_value=Decimal("0"))
    new_initial_register_kwh = serializers.DecimalField(max_digits=14, decimal_places=3, min_value=Decimal("0"))
    work_order = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    multiplier = serializers.DecimalField(
        max_digits=8, decimal_places=3, min_value=Decimal("0.001"), required=False, allow_null=True,
        help_text="The new meter's CT/PT multiplier; the old meter's when left out.",
    )  # fmt: skip
    register_digits = serializers.IntegerField(min_value=1, max_value=12, required=False, allow_null=True)
    register_decimals = serializers.IntegerField(min_value=0, max_value=6, required=False, allow_null=True)
    credentials = serializers.ChoiceField(choices=["password", "certificate"], default="password")

    def validate_new_serial(self, value: str) -> str:
        if Meter.objects.filter(serial=value).exists():
            raise serializers.ValidationError("A meter with this serial is registered already.", code="unique")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        digits, decimals = attrs.get("register_digits"), attrs.get("register_decimals")
        if digits is not None and decimals is not None and decimals >= digits:
            raise serializers.ValidationError({"register_decimals": "Fewer decimals than digits."}, code="invalid")
        return attrs


class MeterExchangedSerializer(serializers.Serializer[Any]):
    exchange = serializers.DictField()
    old_meter = MeterSerializer()
    meter = MeterSerializer()
    mqtt = serializers.DictField()
    certificate = serializers.DictField(allow_null=True)


class MqttCredentialsSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    password = serializers.CharField(
        allow_null=True, help_text="Shown only in this response; only its hash is kept. Null for a certificate."
    )
    host = serializers.CharField()
    port = serializers.IntegerField()
    tls = serializers.BooleanField()


class MeterCertificateIssuedSerializer(serializers.Serializer[Any]):
    """A meter's new client certificate, with its private key: the only time the key is shown."""

    serial = serializers.CharField(help_text="The meter's serial: the certificate's CN and its MQTT identity.")
    serial_number = serializers.CharField(help_text="The certificate's serial number, in hex.")
    fingerprint_sha256 = serializers.CharField()
    not_before = serializers.DateTimeField()
    not_after = serializers.DateTimeField()
    certificate_pem = serializers.CharField()
    private_key_pem = serializers.CharField(help_text="Shown only in this response; it is not kept.")
    ca_certificate_pem = serializers.CharField(help_text="The meter CA, which also signs the broker's certificate.")
    host = serializers.CharField()
    port = serializers.IntegerField(help_text="The broker's TLS listener for client certificates.")


class MeterRegisteredSerializer(serializers.Serializer[Any]):
    meter = MeterSerializer()
    mqtt = MqttCredentialsSerializer()
    certificate = MeterCertificateIssuedSerializer(allow_null=True)


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    class Meta:
        model = Customer
        fields = ["id", "name", "email", "phone", "created_at"]
        read_only_fields = fields


class PremiseSerializer(serializers.ModelSerializer[Premise]):
    feeder = serializers.CharField(source="feeder.code", read_only=True)
    region = serializers.CharField(source="feeder.region.code", read_only=True)

    class Meta:
        model = Premise
        fields = ["id", "address", "city", "postcode", "latitude", "longitude", "feeder", "region"]
        read_only_fields = fields


class AccountSerializer(serializers.ModelSerializer[Account]):
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    tariff = serializers.CharField(source="tariff.code", read_only=True)

    class Meta:
        model = Account
        fields = [
            "id",
            "number",
            "customer",
            "customer_name",
            "premise",
            "tariff",
            "bill_cycle_day",
            "move_in_date",
            "move_out_date",
        ]
        read_only_fields = fields


class ReadingRowSerializer(serializers.Serializer[Any]):
    """One interval, hour or local day: [start, end), energies as metered (before the multiplier)."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    import_kwh = serializers.FloatField(allow_null=True)
    export_kwh = serializers.FloatField(allow_null=True)
    estimated_import_kwh = serializers.FloatField(help_text="The part of import_kwh that is a VEE estimate.")
    estimated = serializers.BooleanField(help_text="True when any of the value is estimated.")
    edited = serializers.BooleanField(allow_null=True, help_text="Raw intervals: set by billing staff.")
    missing_intervals = serializers.IntegerField(allow_null=True, help_text="Days: intervals with no value at all.")
    quality = serializers.ChoiceField(
        choices=list(reading_quality.CODES),
        allow_null=True,
        help_text="Raw intervals: the quality code (docs/reading-quality.md); null for hours and days.",
    )
    espi_quality = serializers.IntegerField(
        allow_null=True, help_text="Raw intervals: the ESPI QualityOfReading number of the quality code."
    )
    # The metaclass takes declared fields off the class, so "source" does not shadow Field.source.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=list(reading_quality.SOURCES), allow_null=True, help_text="Raw intervals: where the value came from."
    )
    quality_intervals = serializers.DictField(
        child=serializers.IntegerField(),
        allow_null=True,
        help_text="Days: the intervals per quality code (codes with none left out); null otherwise.",
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # The same output as the declared fields give, without DRF's per-field machinery: a page of
        # raw intervals is up to 1,000 rows, and the generic path cost more than the database read.
        row: dict[str, Any] = instance
        quality = row.get("quality")
        return {
            "start": _datetime_text(row["start"]),
            "end": _datetime_text(row["end"]),
            "import_kwh": _float_or_none(row["import_kwh"]),
            "export_kwh": _float_or_none(row["export_kwh"]),
            "estimated_import_kwh": float(row["estimated_import_kwh"]),
            "estimated": bool(row["estimated"]),
            "edited": None if row["edited"] is None else bool(row["edited"]),
            "missing_intervals": None if row["missing_intervals"] is None else int(row["missing_intervals"]),
            "quality": quality,
            "espi_quality": None if quality is None else reading_quality.BY_CODE[quality].espi,
            "source": row.get("source"),
            "quality_intervals": row.get("quality_intervals"),
        }


class BillIntervalSerializer(serializers.Serializer[Any]):
    """One interval behind a bill: its energy as metered and as billed (times the multiplier), and how
    its value was obtained."""

    meter = serializers.CharField(help_text="The meter's serial.")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    import_kwh = serializers.FloatField(allow_null=True, help_text="As metered, before the multiplier.")
    export_kwh = serializers.FloatField(allow_null=True)
    multiplier = serializers.DecimalField(max_digits=8, decimal_places=3)
    billed_import_kwh = serializers.FloatField(allow_null=True, help_text="import_kwh times the multiplier.")
    quality = serializers.ChoiceField(choices=list(reading_quality.CODES))
    espi_quality = serializers.IntegerField(help_text="ESPI QualityOfReading.")
    source = serializers.ChoiceField(choices=list(reading_quality.SOURCES))  # type: ignore[assignment]
    estimate_method = serializers.CharField(allow_null=True)
    edited_by = serializers.CharField(allow_blank=True)
    edit_reason = serializers.CharField(allow_blank=True)
    vee_rule = serializers.CharField(allow_blank=True, help_text="The VEE rule a questionable/validated value failed.")
    exception = serializers.IntegerField(allow_null=True, help_text="The exception holding that rule's finding.")


def _datetime_text(moment: Any) -> str:
    """As serializers.DateTimeField writes an aware datetime: in the current zone, "Z" for UTC."""
    text = str(timezone.localtime(moment).isoformat())
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


class EventSerializer(serializers.Serializer[Any]):
    ts = serializers.DateTimeField()
    type = serializers.CharField()
    detail = serializers.JSONField(allow_null=True, required=False)
    received_at = serializers.DateTimeField(allow_null=True, required=False)


class AnomalySerializer(serializers.Serializer[Any]):
    timestamp = serializers.DateTimeField()
    meter_id = serializers.IntegerField()
    rule = serializers.CharField()
    severity = serializers.CharField()
    anomalies = serializers.ListField(child=serializers.CharField(), help_text="The reading fields at fault.")
    # The reading judged; named as in the stored document (a declared field may shadow Serializer.data).
    data = serializers.DictField(child=serializers.FloatField(allow_null=True))  # type: ignore[assignment]
    feeder = serializers.IntegerField(allow_null=True, required=False)
    region = serializers.IntegerField(allow_null=True, required=False)
    detected_at = serializers.DateTimeField(allow_null=True, required=False)


class IncidentSerializer(serializers.ModelSerializer[OutageIncident]):
    feeder = serializers.CharField(source="feeder.code", read_only=True, allow_null=True, default=None)
    region = serializers.CharField(source="region.code", read_only=True, allow_null=True, default=None)
    duration_class = serializers.SerializerMethodField()

    class Meta:
        model = OutageIncident
        fields = [
            "id",
            "status",
            "feeder",
            "region",
            "started_at",
            "ended_at",
            "duration_class",
            "affected_meters",
            "affected_customers",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=OutageIncident.Duration.choices))
    def get_duration_class(self, incident: OutageIncident) -> str:
        """Final once closed; while open, what it is so far."""
        return incident.duration_class or incident.classify(timezone.now())


class AnomalyCountSerializer(serializers.Serializer[Any]):
    group = serializers.IntegerField(allow_null=True, help_text="The region, feeder or meter id counted.")
    severity = serializers.CharField()
    count = serializers.IntegerField()


class OutNowSerializer(serializers.ModelSerializer[IncidentMeter]):
    serial = serializers.CharField(source="meter.serial", read_only=True)
    feeder = serializers.CharField(source="meter.premise.feeder.code", read_only=True, allow_null=True, default=None)

    class Meta:
        model = IncidentMeter
        fields = ["serial", "feeder", "out_since", "source", "incident"]
        read_only_fields = fields


class SilentMeterSerializer(serializers.Serializer[Any]):
    meter = serializers.IntegerField()
    serial = serializers.CharField()
    feeder = serializers.CharField(allow_null=True)
    last_reading = serializers.DateTimeField(help_text="The end of its newest reading's interval.")
    silent_intervals = serializers.IntegerField(help_text="Whole intervals since then.")


class DeadLetterSerializer(serializers.Serializer[Any]):
    received_at = serializers.DateTimeField()
    topic = serializers.CharField()
    reason_code = serializers.CharField()
    reason = serializers.CharField()
    payload = serializers.CharField(help_text="Text cut to 200 characters; binary payloads by size only.")


class IngestStatsSerializer(serializers.Serializer[Any]):
    counters = serializers.DictField(help_text="Counters shared by every ingest worker since they started.")
    dead_letters_last_24h_by_reason = serializers.DictField(child=serializers.IntegerField())
    recent_dead_letters = DeadLetterSerializer(many=True)


class BillLineItemSerializer(serializers.ModelSerializer[BillLineItem]):
    class Meta:
        model = BillLineItem
        fields = ["position", "code", "description", "quantity", "unit", "rate", "amount", "estimated"]
        read_only_fields = fields


class BillVersionSerializer(serializers.ModelSerializer[Bill]):
    class Meta:
        model = Bill
        fields = ["id", "version", "is_current", "rebill_reason", "total", "created_at"]
        read_only_fields = fields


class RegisterReadingSerializer(serializers.Serializer[dict[str, Any]]):
    """A register reading of the meter (kWh as metered, before the multiplier)."""

    at = serializers.DateTimeField()
    import_kwh = serializers.DecimalField(max_digits=14, decimal_places=3)
    export_kwh = serializers.DecimalField(max_digits=14, decimal_places=3, allow_null=True)


def _register(at: Any, import_kwh: Decimal | None, export_kwh: Decimal | None) -> dict[str, Any] | None:
    if at is None or import_kwh is None:
        return None
    return RegisterReadingSerializer({"at": at, "import_kwh": import_kwh, "export_kwh": export_kwh}).data


class BillSerializer(serializers.ModelSerializer[Bill]):
    account = serializers.CharField(source="account.number", read_only=True)
    line_items = BillLineItemSerializer(many=True, read_only=True)
    start_register = serializers.SerializerMethodField()
    end_register = serializers.SerializerMethodField()

    @extend_schema_field(RegisterReadingSerializer(allow_null=True))
    def get_start_register(self, bill: Bill) -> dict[str, Any] | None:
        """A final bill's register at the start of its billed days; null on cycle bills."""
        return _register(bill.start_register_at, bill.start_register_import_kwh, bill.start_register_export_kwh)

    @extend_schema_field(RegisterReadingSerializer(allow_null=True))
    def get_end_register(self, bill: Bill) -> dict[str, Any] | None:
        """A final bill's register at the move-out read; null on cycle bills."""
        return _register(bill.end_register_at, bill.end_register_import_kwh, bill.end_register_export_kwh)

    class Meta:
        model = Bill
        fields = [
            "id",
            "account",
            "kind",
            "period_start",
            "period_end",
            "version",
            "is_current",
            "rebill_reason",
            "currency",
            "import_kwh",
            "export_kwh",
            "net_kwh",
            "estimated_kwh",
            "estimated_share",
            "max_demand_kw",
            "max_demand_at",
            "multiplier",
            "total",
            "determinants",
            "start_register",
            "end_register",
            "created_at",
            "cancelled_at",
            "cancel_reason",
            "line_items",
        ]
        read_only_fields = fields


class BillDetailSerializer(BillSerializer):
    versions = serializers.SerializerMethodField()

    class Meta(BillSerializer.Meta):
        fields = [*BillSerializer.Meta.fields, "versions"]
        read_only_fields = fields

    @extend_schema_field(BillVersionSerializer(many=True))
    def get_versions(self, bill: Bill) -> Any:
        """Every version of this account's bill for the period, oldest first."""
        versions = Bill.objects.filter(
            account_id=bill.account_id, period_start=bill.period_start, period_end=bill.period_end
        ).order_by("version")
        return BillVersionSerializer(versions, many=True).data


# What an on-demand read shows.
READ_FIELDS = [
    "id",
    "command_id",
    "meter",
    "account",
    "purpose",
    "status",
    "requested_at",
    "timeout_at",
    "completed_at",
    "read_at",
    "register_import_kwh",
    "register_export_kwh",
    "estimated",
    "time_suspect",
    "note",
]


class OnDemandReadSerializer(serializers.ModelSerializer[OnDemandRead]):
    meter = serializers.CharField(source="meter.serial", read_only=True)
    account = serializers.CharField(source="account.number", read_only=True, allow_null=True, default=None)

    class Meta:
        model = OnDemandRead
        fields = READ_FIELDS
        read_only_fields = READ_FIELDS


class OnDemandReadRequestSerializer(serializers.Serializer[Any]):
    meter = serializers.RegexField(r"^[A-Za-z0-9_-]+$", max_length=32, help_text="The meter's serial.")
    account = serializers.CharField(max_length=20, required=False, allow_null=True, help_text="An account number.")
    purpose = serializers.ChoiceField(choices=OnDemandRead.Purpose.choices, default=OnDemandRead.Purpose.CHECK)


class DeterminantRowSerializer(serializers.Serializer[Any]):
    """One account's billing determinants for the period billed on the date (more keys as computed)."""

    account_number = serializers.CharField()
    bill_cycle_day = serializers.IntegerField()
    billed = serializers.BooleanField()
    bill_version = serializers.IntegerField(allow_null=True)
    bill_total = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    batch = serializers.IntegerField(
        allow_null=True, help_text="The delivery batch it went out in; null while its read is being fetched."
    )
    final_batch = serializers.BooleanField(help_text="In the final batch: no read arrived, estimated.")
    closing_read = serializers.CharField(
        allow_null=True, help_text="How the closing register read was had: stored, fetched, estimated or pending."
    )


class PendingDeterminantSerializer(serializers.Serializer[Any]):
    """An account whose determinants wait for a read fetched from its meter."""

    account_number = serializers.CharField(source="account.number")
    meter = serializers.CharField(source="meter.serial", allow_null=True)
    reason = serializers.CharField()
    command_id = serializers.CharField(source="command.command_id", allow_null=True)
    command_status = serializers.CharField(source="command.status", allow_null=True)
    attempts = serializers.IntegerField(source="command.attempts", allow_null=True)
    deadline = serializers.DateTimeField(source="command.deadline", allow_null=True)


COMMAND_FIELDS = [
    "id", "command_id", "meter", "kind", "status", "priority", "not_before", "deadline", "attempts", "reason",
    "result", "failure", "idempotency_key", "created_at", "sent_at", "acknowledged_at", "finished_at", "events",
]  # fmt: skip


class MeterCommandEventSerializer(serializers.ModelSerializer[MeterCommandEvent]):
    class Meta:
        model = MeterCommandEvent
        fields = ["status", "at", "attempt", "detail"]
        read_only_fields = fields


class MeterCommandSerializer(serializers.ModelSerializer[MeterCommand]):
    """A command and its history: each change of status with its time."""

    meter = serializers.CharField(source="meter.serial", read_only=True)
    events = MeterCommandEventSerializer(many=True, read_only=True)

    class Meta:
        model = MeterCommand
        fields = COMMAND_FIELDS
        read_only_fields = COMMAND_FIELDS


class MeterCommandRequestSerializer(serializers.Serializer[Any]):
    meter = serializers.RegexField(r"^[A-Za-z0-9_-]+$", max_length=32, help_text="The meter's serial.")
    kind = serializers.ChoiceField(choices=KIND_CHOICES)
    priority = serializers.IntegerField(min_value=1, max_value=9, default=5, help_text="1 lowest, 9 most urgent.")
    not_before = UtcDateTimeField(required=False, help_text="Not sent before this time (default: now).")
    deadline = UtcDateTimeField(
        required=False, help_text="Expires if not completed by then (default: COMMANDS_DEADLINE_S)."
    )
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="",
                                   help_text="Why; required for disconnect and reconnect (audited).")  # fmt: skip
    idempotency_key = serializers.CharField(max_length=100, required=False, allow_blank=True, default="",
                                            help_text="Or the Idempotency-Key header: the same key is one command.")  # fmt: skip


class TouPeriodSerializer(serializers.ModelSerializer[TouPeriod]):
    class Meta:
        model = TouPeriod
        fields = ["name", "day_type", "start_time", "end_time", "rate_per_kwh"]
        read_only_fields = fields


class TariffVersionSerializer(serializers.ModelSerializer[TariffVersion]):
    period_rates = serializers.DictField(
        child=serializers.DecimalField(max_digits=8, decimal_places=5),
        help_text='Time-of-use rates by "day_type:name"; a period not named keeps its own rate.',
    )

    class Meta:
        model = TariffVersion
        fields = ["effective_from", "fixed_monthly_charge", "energy_rate_per_kwh", "demand_charge_per_kw",
                  "export_credit_per_kwh", "period_rates", "note", "created_at"]  # fmt: skip
        read_only_fields = fields


class TariffSerializer(serializers.ModelSerializer[Tariff]):
    """A tariff's own prices apply before its first version; from each version's effective_from on, that version's."""

    # A plain string: codes stored before slug validation (or by a factory) may hold other characters.
    code = serializers.CharField(read_only=True)
    time_of_use = serializers.BooleanField(source="is_time_of_use", read_only=True)
    tou_periods = TouPeriodSerializer(many=True, read_only=True)
    versions = TariffVersionSerializer(many=True, read_only=True)

    class Meta:
        model = Tariff
        fields = ["id", "code", "name", "currency", "time_of_use", "fixed_monthly_charge", "energy_rate_per_kwh",
                  "demand_charge_per_kw", "export_credit_per_kwh", "tou_periods", "versions"]  # fmt: skip
        read_only_fields = fields
