"""`manage.py outbox_deliver`: push the outbox's new or changed BILLDET files to the CIS over SFTP, now.

What the minute job (billing.outbox_sweep) does, in this process and with a progress bar: record
new file versions, then try each one due once. Running it again sends nothing that was delivered.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.delivery import delivery_attempt, outbox_sweep
from billing.models import OutboxDelivery, OutboxDeliveryAttempt
from billing.sftp import SftpTarget


class Command(BaseCommand):
    help = "Deliver the outbox's new or changed BILLDET files to the CIS's SFTP server now."

    def handle(self, *args: Any, **options: Any) -> None:
        target = SftpTarget.from_settings()
        if target is None:
            raise CommandError("SFTP delivery is off: set BILLING_SFTP_HOST (and its companions, see the README)")
        sweep = outbox_sweep()
        self.stdout.write(f"{sweep.found} new file version(s); {len(sweep.due)} to send to {target.describe()}")
        failed = 0
        for delivery_pk in tqdm(sweep.due, unit="file", desc="delivering"):
            result = delivery_attempt(delivery_pk=delivery_pk)
            name = OutboxDelivery.objects.values_list("file_name", flat=True).get(pk=delivery_pk)
            if result.outcome in (OutboxDeliveryAttempt.Outcome.FAILED, OutboxDeliveryAttempt.Outcome.REFUSED):
                failed += 1
                self.stderr.write(f"  {name}: {result.outcome}: {result.error}")
            elif result.outcome is not None:
                self.stdout.write(f"  {name}: {result.outcome}")
        if failed:
            raise CommandError(f"{failed} file(s) not delivered; they are retried after their backoff")
