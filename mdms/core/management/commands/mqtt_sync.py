"""Bring the broker's accounts and ACLs in line with the meter registry.

    manage.py mqtt_sync

Run after `migrate` at every start (and after a broker outage): it creates the shared roles and
the ingest account, and for every meter its role and account, enabled or disabled by status. It
also publishes the meter CA's CRL again (a revocation whose publication failed, or a CRL nearing
the end of its validity) and has the development broker read it.
Idempotent: a second run sends no command. A meter whose account the broker never had gets one
without a password; `register_meter SERIAL --new-password` lets it in.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mdms.core.mqtt import broker, certificates


class Command(BaseCommand):
    help = "Create or repair the broker's ingest account and every meter's account and ACLs."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        # The CRL first: it needs no broker, and a production broker waits for it before it starts
        # its TLS listener (deploy/mosquitto/init.sh).
        try:
            listed = broker.publish_crl()
        except certificates.CertificateError as exc:
            self.stdout.write(self.style.WARNING(f"CRL not published: {exc}"))
        else:
            self.stdout.write(f"CRL: {listed} revoked meter certificates")
        try:
            report = broker.sync_all()
        except broker.BrokerError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"meters {report.meters}: changed {report.changed}, unchanged {report.unchanged}; "
            f"created {report.created}, roles fixed {report.roles_fixed}, enabled {report.enabled}, "
            f"disabled {report.disabled}; commands {report.commands} in {time.monotonic() - started:.1f} s"
        )
        if report.serials_without_password:
            shown = ", ".join(report.serials_without_password[:10])
            more = len(report.serials_without_password) - 10
            self.stdout.write(
                self.style.WARNING(
                    f"{report.without_password} meter accounts were created without a password (the broker missed "
                    f"their registration): {shown}{f' and {more} more' if more > 0 else ''}. "
                    "Issue new credentials with `manage.py register_meter SERIAL --new-password` "
                    "(or `--new-certificate` for a meter on certificates)."
                )
            )
