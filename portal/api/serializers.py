"""Shapes of the API's objects. Every row names its object in words too (serial, account number)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.api import READ_FIELDS
from billing.models import Bill, BillLineItem, OnDemandRead
from mdms.core.models import Account, Customer, Meter, Premise, Tariff, TariffVersion, TouPeriod
from monitoring.models import OutageIncident


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
    interval_s = serializers.ChoiceField(choices=[60, 300, 600, 900, 1800, 3600], default=900)
    has_solar = serializers.BooleanField(default=False)
    solar_capacity_kw = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=Decimal("0"), required=False, allow_null=True
    )

    def validate_serial(self, value: str) -> str:
        if Meter.objects.filter(serial=value).exists():
            raise serializers.ValidationError("A meter with this serial is registered already.", code="unique")
        return value


class MqttCredentialsSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    password = serializers.CharField(help_text="Shown only in this response; only its hash is kept.")
    host = serializers.CharField()
    port = serializers.IntegerField()
    tls = serializers.BooleanField()


class MeterRegisteredSerializer(serializers.Serializer[Any]):
    meter = MeterSerializer()
    mqtt = MqttCredentialsSerializer()


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

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # The same output as the declared fields give, without DRF's per-field machinery: a page of
        # raw intervals is up to 1,000 rows, and the generic path cost more than the database read.
        row: dict[str, Any] = instance
        return {
            "start": _datetime_text(row["start"]),
            "end": _datetime_text(row["end"]),
            "import_kwh": _float_or_none(row["import_kwh"]),
            "export_kwh": _float_or_none(row["export_kwh"]),
            "estimated_import_kwh": float(row["estimated_import_kwh"]),
            "estimated": bool(row["estimated"]),
            "edited": None if row["edited"] is None else bool(row["edited"]),
            "missing_intervals": None if row["missing_intervals"] is None else int(row["missing_intervals"]),
        }


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
