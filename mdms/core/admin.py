from __future__ import annotations

import datetime as dt
import io
import zipfile

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from mdms.core import services
from mdms.core.audit import audit_record
from mdms.core.models import (
    Account,
    Customer,
    Feeder,
    Holiday,
    Meter,
    MeterCertificate,
    MeterExchange,
    MeterInstallation,
    MeterMultiplier,
    Premise,
    Region,
    Tariff,
    TouPeriod,
)
from mdms.core.models_api import AuditLog
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


class MeterMultiplierInline(admin.TabularInline[MeterMultiplier, Meter]):
    """The multiplier's history; a change is added on the Meter multipliers page (it keeps the old value)."""

    model = MeterMultiplier
    extra = 0
    fields = ("effective_from", "multiplier", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Meter | None = None) -> bool:
        return False


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
    readonly_fields = ["mqtt_credentials_issued_at", "created_at", "installed_at", "removed_at"]
    inlines = [MeterInstallationInline, MeterMultiplierInline, MeterCertificateInline]
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


class MeterExchangeForm(forms.ModelForm):  # type: ignore[type-arg]
    new_serial = forms.RegexField(r"^[A-Za-z0-9_-]+$", max_length=32, help_text="The new meter's serial.")

    class Meta:
        model = MeterExchange
        fields = ["old_meter", "new_serial", "exchanged_at", "old_final_register_kwh", "new_initial_register_kwh",
                  "work_order"]  # fmt: skip

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        old = data.get("old_meter")
        if isinstance(old, Meter) and (old.status == Meter.Status.REMOVED or old.premise_id is None):
            raise ValidationError({"old_meter": f"Meter {old} is not installed on a premise."})
        if Meter.objects.filter(serial=data.get("new_serial")).exists():
            raise ValidationError({"new_serial": "A meter with this serial is registered already."})
        at = data.get("exchanged_at")
        if isinstance(at, dt.datetime) and at > timezone.now():
            raise ValidationError({"exchanged_at": "An exchange is recorded after it happened."})
        return data


@admin.register(MeterExchange)
class MeterExchangeAdmin(admin.ModelAdmin[MeterExchange]):
    """Exchanges are added here (the new meter's password is shown once) and never edited afterwards."""

    form = MeterExchangeForm
    list_display = ["exchanged_at", "premise", "old_meter", "new_meter", "old_final_register_kwh",
                    "new_initial_register_kwh", "work_order"]  # fmt: skip
    search_fields = ["old_meter__serial", "new_meter__serial", "premise__address", "work_order"]
    raw_id_fields = ["old_meter"]
    list_select_related = ["premise", "old_meter", "new_meter"]
    date_hierarchy = "exchanged_at"

    def has_change_permission(self, request: HttpRequest, obj: MeterExchange | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: MeterExchange | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: MeterExchange, form: MeterExchangeForm, change: bool) -> None:
        old = obj.old_meter
        assert old.premise is not None  # checked by the form
        try:
            record, credentials = services.meter_exchange(
                premise=old.premise,
                old_meter=old,
                new_meter_serial=form.cleaned_data["new_serial"],
                at=obj.exchanged_at,
                old_final_register_kwh=obj.old_final_register_kwh,
                new_initial_register_kwh=obj.new_initial_register_kwh,
                work_order=obj.work_order,
                actor=request.user,
                via="admin",
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
            raise
        obj.pk, obj.premise, obj.new_meter, obj.created_at = (
            record.pk,
            record.premise,
            record.new_meter,
            record.created_at,
        )
        messages.warning(
            request,
            f"MQTT credentials for {credentials.serial}: username {credentials.mqtt_username}, "
            f"password {credentials.mqtt_password}. This password is shown only once.",
        )


class MeterMultiplierForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = MeterMultiplier
        fields = ["meter", "effective_from", "multiplier"]


@admin.register(MeterMultiplier)
class MeterMultiplierAdmin(admin.ModelAdmin[MeterMultiplier]):
    """A CT/PT change from a day; billing scales each day by the multiplier in force on it."""

    form = MeterMultiplierForm
    list_display = ["meter", "effective_from", "multiplier", "created_at"]
    search_fields = ["meter__serial"]
    raw_id_fields = ["meter"]

    def has_change_permission(self, request: HttpRequest, obj: MeterMultiplier | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: MeterMultiplier, form: MeterMultiplierForm, change: bool) -> None:
        row = services.meter_set_multiplier(
            meter=obj.meter, multiplier=obj.multiplier, effective_from=obj.effective_from
        )
        obj.pk = row.pk
        audit_record(actor=request.user, action=AuditLog.Action.METER_MULTIPLIER, target=f"meter:{obj.meter.serial}",
                     detail={"multiplier": str(obj.multiplier), "effective_from": obj.effective_from.isoformat()})  # fmt: skip


# API tokens and the audit log register themselves with the admin site.
from mdms.core import admin_api  # noqa: E402, F401
