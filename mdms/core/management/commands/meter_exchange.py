"""Exchange a meter on its premise and print the new meter's MQTT password, once.

    manage.py meter_exchange OLD_SERIAL NEW_SERIAL --at 2026-11-20T14:05+01:00 \\
        --old-final-register-kwh 45123.4 --new-initial-register-kwh 0.2 [--work-order WO-123] \\
        [--multiplier 40] [--register-digits 6 --register-decimals 1]

The old meter is removed at --at (its readings of intervals ending later are refused, its broker
account ends), the new one is registered and installed on the same premise from that moment.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mdms.core import services
from mdms.core.models import Meter


def _decimal(raw: str) -> Decimal:
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValueError(raw) from None


def _aware(raw: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise ValueError(raw)
    return moment


class Command(BaseCommand):
    help = "Exchange a meter on its premise at a moment; prints the new meter's MQTT password once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("old_serial", help="the meter taken off the premise")
        parser.add_argument("new_serial", help="the meter put in its place (registered now)")
        parser.add_argument("--at", type=_aware, required=True, help="ISO 8601 with a UTC offset")
        parser.add_argument("--old-final-register-kwh", type=_decimal, required=True)
        parser.add_argument("--new-initial-register-kwh", type=_decimal, required=True)
        parser.add_argument("--work-order", default="")
        parser.add_argument("--multiplier", type=_decimal, help="the new meter's CT/PT ratio (default: the old one's)")
        parser.add_argument("--register-digits", type=int)
        parser.add_argument("--register-decimals", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        old = Meter.objects.filter(serial=options["old_serial"]).select_related("premise").first()
        if old is None:
            raise CommandError(f"no meter {options['old_serial']}")
        if old.premise is None:
            raise CommandError(f"meter {old.serial} is not installed on a premise")
        try:
            record, credentials = services.meter_exchange(
                premise=old.premise,
                old_meter=old,
                new_meter_serial=options["new_serial"],
                at=options["at"],
                old_final_register_kwh=options["old_final_register_kwh"],
                new_initial_register_kwh=options["new_initial_register_kwh"],
                work_order=options["work_order"],
                multiplier=options["multiplier"],
                register_digits=options["register_digits"],
                register_decimals=options["register_decimals"],
                via="command",
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"meter {old.serial} removed and {record.new_meter.serial} installed at {record.premise} "
            f"at {record.exchanged_at.isoformat()}"
        )
        self.stdout.write(f"broker: {settings.MQTT_HOST}:{settings.MQTT_PORT}")
        self.stdout.write(f"username: {credentials.mqtt_username}")
        self.stdout.write(f"password: {credentials.mqtt_password}")
        self.stdout.write("The password is shown only this once: copy it into the meter now.")
