"""Register a meter and print its MQTT credentials, once: a password, or a client certificate.

    manage.py register_meter SERIAL [--premise ID] [--solar [--solar-capacity-kw 6]] [--interval-s 900]
    manage.py register_meter SERIAL --certificate [--out DIR]   # a certificate (CN = SERIAL), no password
    manage.py register_meter SERIAL --new-password     # an existing meter lost its password
    manage.py register_meter SERIAL --new-certificate [--out DIR]   # revokes the meter's old certificate

Only a hash of the password is kept, and the broker keeps its own: copy it into the meter now.
A certificate's private key is not kept at all: with --out it is written once to DIR/SERIAL.key
(mode 0600) beside DIR/SERIAL.crt and DIR/ca.crt; without --out all three are printed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mdms.core import services
from mdms.core.models import Meter, Premise
from mdms.core.mqtt import certificates
from mdms.core.mqtt.certificates import CertificateError
from mdms.core.reading_fields import DEFAULT_INTERVAL_S


def _decimal(raw: str) -> Decimal:
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValueError(raw) from None


class Command(BaseCommand):
    help = "Register a meter (or issue it new credentials) and print its MQTT password once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("serial", help="the meter's serial, also its MQTT username")
        parser.add_argument("--premise", type=int, help="id of the premise where it is installed")
        parser.add_argument(
            "--install-date",
            type=dt.date.fromisoformat,
            help="YYYY-MM-DD it was installed at --premise (default: today, with --premise; without a premise"
            " the meter is not installed and has no install date, as the API shows)",
        )
        parser.add_argument("--solar", action="store_true", help="the premise exports solar energy")
        parser.add_argument("--solar-capacity-kw", type=_decimal)
        parser.add_argument("--interval-s", type=int, default=DEFAULT_INTERVAL_S, help="reading interval in seconds")
        parser.add_argument("--multiplier", type=_decimal, default=Decimal("1"), help="CT/PT ratio")
        parser.add_argument("--nominal-voltage-v", type=_decimal, default=Decimal("230"))
        parser.add_argument("--nominal-frequency-hz", type=_decimal, default=Decimal("50"))
        parser.add_argument("--rated-current-a", type=_decimal, default=Decimal("60"))
        parser.add_argument(
            "--new-password", action="store_true", help="issue new credentials to an existing meter (old ones stop)"
        )
        parser.add_argument(
            "--certificate", action="store_true", help="register with a client certificate instead of a password"
        )
        parser.add_argument(
            "--new-certificate",
            action="store_true",
            help="a new certificate for an existing meter (the old is revoked)",
        )
        parser.add_argument("--out", type=Path, help="write SERIAL.crt, SERIAL.key and ca.crt here instead of printing")

    def handle(self, *args: Any, **options: Any) -> None:
        serial: str = options["serial"]
        if sum(bool(options[o]) for o in ("new_password", "certificate", "new_certificate")) > 1:
            raise CommandError("choose one of --certificate, --new-certificate and --new-password")
        if options["new_certificate"]:
            meter = Meter.objects.filter(serial=serial).first()
            if meter is None:
                raise CommandError(f"no meter {serial}")
            if not meter.can_connect:
                raise CommandError(f"meter {serial} is {meter.status}; enable it before issuing a certificate")
            try:
                issued = services.meter_issue_certificate(meter=meter)
            except CertificateError as exc:
                raise CommandError(str(exc)) from exc
            self._hand_over(issued, options["out"])
            return
        if options["new_password"]:
            meter = Meter.objects.filter(serial=serial).first()
            if meter is None:
                raise CommandError(f"no meter {serial}")
            credentials = services.meter_issue_credentials(meter=meter)
        else:
            premise = None
            if options["install_date"] is not None and options["premise"] is None:
                raise CommandError("--install-date needs --premise: a meter is installed at a premise")
            if options["premise"] is not None:
                premise = Premise.objects.filter(pk=options["premise"]).first()
                if premise is None:
                    raise CommandError(f"no premise {options['premise']}")
            if Meter.objects.filter(serial=serial).exists():
                raise CommandError(f"meter {serial} is already registered (use --new-password for new credentials)")
            try:
                meter, credentials = services.meter_register(
                    serial=serial,
                    premise=premise,
                    install_date=options["install_date"],
                    multiplier=options["multiplier"],
                    nominal_voltage_v=options["nominal_voltage_v"],
                    nominal_frequency_hz=options["nominal_frequency_hz"],
                    rated_current_a=options["rated_current_a"],
                    interval_s=options["interval_s"],
                    has_solar=options["solar"],
                    solar_capacity_kw=options["solar_capacity_kw"],
                    certificate=options["certificate"],
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            except CertificateError as exc:
                raise CommandError(str(exc)) from exc
        if credentials.certificate is not None:
            self._hand_over(credentials.certificate, options["out"])
            return
        self.stdout.write(f"serial: {credentials.serial}")
        self.stdout.write(f"username: {credentials.mqtt_username}")
        self.stdout.write(f"password: {credentials.mqtt_password}")
        self.stdout.write(
            self.style.WARNING("The password is shown only this once. If the broker was unreachable, see the log.")
        )

    def _hand_over(self, issued: certificates.IssuedCertificate, out: Path | None) -> None:
        """The certificate, its key and the CA, once: to files (key mode 0600) or to the terminal."""
        self.stdout.write(f"serial: {issued.common_name}")
        self.stdout.write(f"certificate serial number: {issued.serial_hex}")
        self.stdout.write(f"sha256 fingerprint: {issued.fingerprint_sha256}")
        self.stdout.write(f"valid until: {issued.not_after.isoformat()}")
        self.stdout.write(
            f"broker: {settings.MQTT_HOST}:{settings.MQTT_TLS_PORT} (TLS, client certificate; no username or password)"
        )
        if out is not None:
            written = certificates.write_meter_files(issued, out)
            for path in written:
                self.stdout.write(f"wrote {path}")
        else:
            self.stdout.write(issued.certificate_pem + issued.private_key_pem + issued.ca_certificate_pem)
        self.stdout.write(
            self.style.WARNING("The private key is given only this once and is not kept. Load it into the meter now.")
        )
