"""Delivering the outbox's BILLDET files to the CIS over SFTP: find new versions, send each once.

outbox_scan records each file whose bytes differ from its newest recorded version as a new
OutboxDelivery (PostgreSQL's unique (file_name, version) is the guard against two scans at once);
delivery_attempt claims one version (compare-and-swap, so a redelivered task and the sweep never
send it twice), re-reads the file, uploads exactly the bytes whose hash was recorded, and logs the
attempt. A failure sets the next attempt after a doubling backoff; billing.tasks retries at once
within the task and the periodic sweep picks up whatever is still due.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from billing.models import OutboxDelivery, OutboxDeliveryAttempt
from billing.sftp import HostKeyRefused, SftpTarget, UploadFailed, upload

logger = logging.getLogger(__name__)

FILE_PATTERN = "BILLDET_*.csv"
# A claim older than this many connection timeouts belongs to a worker that died mid-upload.
STALE_CLAIM_TIMEOUTS = 4


def outbox_dir() -> Path:
    return Path(settings.BILLING_OUTBOX_DIR)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def retry_delay_s(attempts: int) -> float:
    """Seconds before try attempts + 1: RETRY_BASE doubling with each failure, capped at RETRY_MAX."""
    base, cap = settings.BILLING_SFTP_RETRY_BASE_S, settings.BILLING_SFTP_RETRY_MAX_S
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


def outbox_scan(*, directory: Path | None = None) -> list[OutboxDelivery]:
    """Record every outbox file whose content differs from its newest recorded version; returns the new ones."""
    folder = directory or outbox_dir()
    if not folder.is_dir():
        return []
    files = {path.name: path for path in sorted(folder.glob(FILE_PATTERN)) if path.is_file()}
    # The newest version of each file (PostgreSQL's DISTINCT ON): one query for the whole outbox.
    newest = {
        d.file_name: d
        for d in OutboxDelivery.objects.filter(file_name__in=list(files))
        .order_by("file_name", "-version")
        .distinct("file_name")
    }
    created = []
    for name, path in files.items():
        latest = newest.get(name)
        stat = path.stat()
        if latest is not None and (latest.size_bytes, latest.file_mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            continue  # untouched since it was hashed
        data = path.read_bytes()
        digest = _digest(data)
        if latest is not None and latest.sha256 == digest:
            # Rewritten with the same bytes (a re-run): never delivered twice; remember the new time.
            OutboxDelivery.objects.filter(pk=latest.pk).update(file_mtime_ns=stat.st_mtime_ns)
            continue
        try:
            with transaction.atomic():
                delivery = OutboxDelivery.objects.create(
                    file_name=name,
                    version=(latest.version if latest else 0) + 1,
                    sha256=digest,
                    size_bytes=len(data),
                    file_mtime_ns=stat.st_mtime_ns,
                )
        except IntegrityError:
            continue  # a concurrent scan recorded this version first
        # Older versions not yet sent will never be: their bytes are gone.
        OutboxDelivery.objects.filter(
            file_name=name,
            version__lt=delivery.version,
            status__in=[OutboxDelivery.Status.PENDING, OutboxDelivery.Status.FAILED],
        ).update(status=OutboxDelivery.Status.SUPERSEDED, next_attempt_at=None)
        created.append(delivery)
    return created


def deliveries_due(*, now: dt.datetime | None = None) -> list[int]:
    """Versions to send now: waiting, failed past their backoff, or claimed by a worker long gone."""
    now = now or dt.datetime.now(tz=dt.UTC)
    stale = now - dt.timedelta(seconds=settings.BILLING_SFTP_TIMEOUT_S * STALE_CLAIM_TIMEOUTS)
    Status = OutboxDelivery.Status
    return list(
        OutboxDelivery.objects.filter(
            Q(status=Status.PENDING)
            | Q(status=Status.FAILED, next_attempt_at__lte=now)
            | Q(status=Status.SENDING, claimed_at__lt=stale)
        )
        .order_by("found_at", "id")
        .values_list("pk", flat=True)
    )


def _claim(delivery_pk: int, now: dt.datetime) -> bool:
    """pending/failed (or a stale sending) -> sending; False when someone else has it or it is done."""
    Status = OutboxDelivery.Status
    stale = now - dt.timedelta(seconds=settings.BILLING_SFTP_TIMEOUT_S * STALE_CLAIM_TIMEOUTS)
    claimed = (
        OutboxDelivery.objects.filter(pk=delivery_pk)
        .filter(Q(status__in=[Status.PENDING, Status.FAILED]) | Q(status=Status.SENDING, claimed_at__lt=stale))
        .update(status=Status.SENDING, claimed_at=now)
    )
    return claimed == 1


@dataclass
class AttemptResult:
    delivery_pk: int
    outcome: str | None  # an OutboxDeliveryAttempt.Outcome, or None when nothing was tried
    retry_in_s: float | None = None  # set after a failure that another try may mend
    error: str = field(default="")


def delivery_attempt(
    *, delivery_pk: int, target: SftpTarget | None = None, now: dt.datetime | None = None
) -> AttemptResult:
    """Try to send one version once, and log the attempt. Nothing is tried (outcome None) when
    delivery is off, the version is not due for a claim, or another worker holds it."""
    target = target or SftpTarget.from_settings()
    started = now or dt.datetime.now(tz=dt.UTC)
    if target is None or not _claim(delivery_pk, started):
        return AttemptResult(delivery_pk=delivery_pk, outcome=None)
    delivery = OutboxDelivery.objects.get(pk=delivery_pk)
    Outcome, Status = OutboxDeliveryAttempt.Outcome, OutboxDelivery.Status
    path = outbox_dir() / delivery.file_name
    data = path.read_bytes() if path.is_file() else None
    retry_in_s: float | None = None
    if data is None or _digest(data) != delivery.sha256:
        outcome, error = Outcome.SUPERSEDED, "the file changed or left the outbox before this version was sent"
        fields: dict[str, Any] = {"status": Status.SUPERSEDED, "next_attempt_at": None}
    else:
        clock = time.monotonic()
        try:
            upload(
                target=target,
                name=delivery.file_name,
                data=data,
                temporary_name=f".{delivery.file_name}.{delivery.pk}.part",
            )
        except UploadFailed as exc:
            outcome = Outcome.REFUSED if isinstance(exc, HostKeyRefused) else Outcome.FAILED
            error = str(exc)
            retry_in_s = retry_delay_s(delivery.attempts + 1)
            fields = {
                "status": Status.FAILED,
                "next_attempt_at": started + dt.timedelta(seconds=retry_in_s),
                "last_error": error,
            }
            logger.warning(
                "delivery of %s v%s to %s: %s", delivery.file_name, delivery.version, target.describe(), error
            )
        else:
            outcome, error = Outcome.DELIVERED, ""
            fields = {"status": Status.DELIVERED, "delivered_at": dt.datetime.now(tz=dt.UTC), "next_attempt_at": None}
            logger.info(
                "delivered %s v%s to %s in %.1f s",
                delivery.file_name,
                delivery.version,
                target.describe(),
                time.monotonic() - clock,
            )
    with transaction.atomic():
        OutboxDeliveryAttempt.objects.create(
            delivery=delivery,
            started_at=started,
            finished_at=dt.datetime.now(tz=dt.UTC),
            outcome=outcome,
            error=error,
        )
        OutboxDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
            attempts=delivery.attempts + (0 if outcome == Outcome.SUPERSEDED else 1),
            destination=target.describe(),
            claimed_at=None,
            **fields,
        )
    return AttemptResult(delivery_pk=delivery_pk, outcome=outcome, retry_in_s=retry_in_s, error=error)


@dataclass
class SweepResult:
    found: int  # new file versions recorded by this sweep
    due: list[int]  # versions to send now


def outbox_sweep(*, now: dt.datetime | None = None) -> SweepResult:
    """Record new file versions and list what is due; nothing at all while delivery is off."""
    if SftpTarget.from_settings() is None:
        return SweepResult(found=0, due=[])
    found = outbox_scan()
    return SweepResult(found=len(found), due=deliveries_due(now=now))
