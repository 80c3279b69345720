from __future__ import annotations

import io
import zipfile

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from mdms.core import services
from mdms.core.models import (
    Account,
    Customer,
    Feeder,
    Holiday,
    Meter,
    MeterCertificate,
    MeterInstallation,
    Premise,
    Region,
    Tariff,
    TouPeriod,
)
from mdms.core.mqtt import certificates


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin[Region]):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


@admin.register(Feeder)
class FeederAdmin(admin.ModelAdmin[Feeder]):
    list_display = ["code", "name", "region", "capacity_kw"]
    list_filter = ["region"]
    search_fields = ["code", "name"]
    list_select_related = ["region"]


@admin.register(Premise)
class PremiseAdmin(admin.ModelAdmin[Premise]):
    list_display = ["id", "address", "city", "feeder", "latitude", "longitude"]
    list_filter = ["feeder__region", "feeder"]
    search_fields = ["address", "city", "postcode"]
    list_select_related = ["feeder__region"]


class AccountInline(admin.TabularInline[Account, Customer]):
    model = Account
    extra = 0
    fields = ["number", "premise", "tariff", "bill_cycle_day", "move_in_date", "move_out_date"]
    raw_id_fields = ["premise"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["name", "email", "phone", "user"]
    search_fields = ["name", "email", "phone", "accounts__number"]
    raw_id_fields = ["user"]
    inlines = [AccountInline]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin[Account]):
    list_display = ["number", "customer", "premise", "tariff", "bill_cycle_day", "move_in_date", "move_out_date"]
    list_filter = ["bill_cycle_day", "tariff", "premise__feeder__region"]
    search_fields = ["number", "customer__name", "premise__address"]
    raw_id_fields = ["customer", "premise"]
    list_select_related = ["customer", "premise", "tariff"]
    date_hierarchy = "move_in_date"


class TouPeriodInline(admin.TabularInline[TouPeriod, Tariff]):
    model = TouPeriod
    extra = 0


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin[Tariff]):
    list_display = [
        "code", "name", "currency", "fixed_monthly_charge", "energy_rate_per_kwh",
        "demand_charge_per_kw", "export_credit_per_kwh",
    ]  # fmt: skip
    search_fields = ["code", "name"]
    inlines = [TouPeriodInline]


@admin.register(Holiday)
class HolidayAdmin(admin.ModelAdmin[Holiday]):
    list_display = ["date", "name"]
    date_hierarchy = "date"


class MeterInstallationInline(admin.TabularInline[MeterInstallation, Meter]):
    model = MeterInstallation
    extra = 0
    raw_id_fields = ["premise"]
    readonly_fields = ["premise", "installed_on", "removed_on"]
    can_delete = False


class MeterCertificateInline(admin.TabularInline[MeterCertificate, Meter]):
    """Issued certificates (never their keys): what was issued when, and what is revoked."""

    model = MeterCertificate
    extra = 0
    fields = (
        "serial_number", "fingerprint_sha256", "not_before", "not_after", "issued_at", "revoked_at", "revocation_reason",
    )  # fmt: skip
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Meter | None = None) -> bool:
        return False  # issued by the action, which hands over the key


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin[Meter]):
    list_display = ["serial", "status", "premise", "has_solar", "multiplier", "nominal_voltage_v", "install_date"]
    list_filter = ["status", "has_solar", "premise__feeder__region", "nominal_voltage_v"]
    search_fields = ["serial", "premise__address"]
    raw_id_fields = ["premise"]
    list_select_related = ["premise"]
    readonly_fields = ["mqtt_credentials_issued_at", "created_at"]
    inlines = [MeterInstallationInline, MeterCertificateInline]
    actions = ["disable_meters", "enable_meters", "issue_new_credentials", "issue_certificates"]

    def save_model(self, request: HttpRequest, obj: Meter, form: object, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # type: ignore[arg-type]
            return
        # A new meter goes through registration, which issues its MQTT credentials: the
        # password is shown once, here.
        meter, credentials = services.meter_register(
            serial=obj.serial,
            premise=obj.premise,
            install_date=obj.install_date,
            multiplier=obj.multiplier,
            nominal_voltage_v=obj.nominal_voltage_v,
            nominal_frequency_hz=obj.nominal_frequency_hz,
            rated_current_a=obj.rated_current_a,
            interval_s=obj.interval_s,
            has_solar=obj.has_solar,
            solar_capacity_kw=obj.solar_capacity_kw,
        )
        obj.pk = meter.pk
        messages.warning(
            request,
            f"MQTT credentials for {credentials.serial}: username {credentials.mqtt_username}, "
            f"password {credentials.mqtt_password}. This password is shown only once.",
        )

    @admin.action(description="Disable the selected meters (cut off from the broker)")
    def disable_meters(self, request: HttpRequest, queryset: QuerySet[Meter]) -> None:
        count = sum(services.meter_disable(meter=m) for m in queryset)
        self.message_user(request, f"{count} meter(s) disabled.")

    @admin.action(description="Enable the selected meters")
    def enable_meters(self, request: HttpRequest, queryset: QuerySet[Meter]) -> None:
        count = sum(services.meter_enable(meter=m) for m in queryset)
        self.message_user(request, f"{count} meter(s) enabled.")

    @admin.action(description="Issue new MQTT credentials (the old password stops working)")
    def issue_new_credentials(self, request: HttpRequest, queryset: QuerySet[Meter]) -> None:
        for meter in queryset:
            credentials = services.meter_issue_credentials(meter=meter)
            messages.warning(
                request, f"{credentials.serial}: new password {credentials.mqtt_password} (shown only once)."
            )

    @admin.action(description="Issue new client certificates (download once; the old ones are revoked)")
    def issue_certificates(self, request: HttpRequest, queryset: QuerySet[Meter]) -> HttpResponse | None:
        """A ZIP of SERIAL.crt, SERIAL.key and ca.crt per meter: the keys exist only in this download."""
        meters = [m for m in queryset if m.can_connect]
        skipped = queryset.count() - len(meters)
        if skipped:
            messages.warning(request, f"{skipped} disabled or removed meter(s) skipped: enable them first.")
        if not meters:
            return None
        buffer = io.BytesIO()
        try:
            # All or none: a failure part-way must not leave revoked certificates whose successors' keys are lost.
            with transaction.atomic(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for meter in meters:
                    issued = services.meter_issue_certificate(meter=meter)
                    archive.writestr(f"{meter.serial}/{meter.serial}.crt", issued.certificate_pem)
                    archive.writestr(f"{meter.serial}/{meter.serial}.key", issued.private_key_pem)
                    archive.writestr(f"{meter.serial}/ca.crt", issued.ca_certificate_pem)
        except certificates.CertificateError as exc:
            messages.error(request, str(exc))
            return None
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="meter-certificates.zip"'
        response["Cache-Control"] = "no-store"
        return response


# API tokens and the audit log register themselves with the admin site.
from mdms.core import admin_api  # noqa: E402, F401
