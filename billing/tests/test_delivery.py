"""BILLDET files delivered to the CIS over SFTP, against a real SFTP server on loopback (asyncssh's)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from django.test import Client

from billing.delivery import delivery_attempt, outbox_sweep
from billing.models import OutboxDelivery, OutboxDeliveryAttempt
from billing.outbox import outbox_write
from billing.tests.bills_helpers import release_in_batches
from billing.tests.sftp_server import SftpServer
from billing.tests.test_outbox import OCT, september  # noqa: F401  (the fixture: three accounts due on 1 Oct)
from mdms.core.testing import start_django_with

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("september")]
Status, Outcome = OutboxDelivery.Status, OutboxDeliveryAttempt.Outcome


@pytest.fixture
def client_key(tmp_path: Path) -> asyncssh.SSHKey:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(tmp_path / "id_ed25519")
    return key


@pytest.fixture
def cis(tmp_path: Path, client_key: asyncssh.SSHKey, settings: Any) -> Iterator[SftpServer]:
    """The CIS's SFTP server (not started: each test starts it when it wants it up), and the settings
    that point delivery at it, with a backoff of a fraction of a second."""
    server = SftpServer(tmp_path / "cis", user="cis", client_public_key=client_key.export_public_key().decode())
    settings.BILLING_OUTBOX_DIR = str(tmp_path / "outbox")
    settings.BILLING_SFTP_HOST = "127.0.0.1"
    settings.BILLING_SFTP_PORT = server.port
    settings.BILLING_SFTP_USER = "cis"
    settings.BILLING_SFTP_KEY_FILE = str(tmp_path / "id_ed25519")
    settings.BILLING_SFTP_KEY_PASSPHRASE = ""
    settings.BILLING_SFTP_KNOWN_HOST_KEY = server.host_public_key
    settings.BILLING_SFTP_REMOTE_DIR = "."
    settings.BILLING_SFTP_TIMEOUT_S = 5.0
    settings.BILLING_SFTP_RETRY_BASE_S = 0.2
    settings.BILLING_SFTP_RETRY_MAX_S = 2.0
    yield server
    server.stop()


def outbox(settings: Any) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(Path(settings.BILLING_OUTBOX_DIR).glob("BILLDET_*.csv"))}


def deliver_due(now: dt.datetime | None = None) -> list[str | None]:
    """What the periodic sweep and its tasks do, in this thread: record new versions, try each one due."""
    return [delivery_attempt(delivery_pk=pk, now=now).outcome for pk in outbox_sweep(now=now).due]


def delivery_log_page(bill: Any) -> str:
    client = Client()
    client.force_login(bill)
    response = client.get("/billing/deliveries/")
    assert response.status_code == 200
    return response.content.decode()


def test_each_new_batch_file_reaches_the_cis_under_a_temporary_name_then_renamed(
    cis: SftpServer, settings: Any, bill: Any
) -> None:
    cis.start()
    release_in_batches(OCT, 2)
    outbox_write(run_date=OCT)
    assert deliver_due() == [Outcome.DELIVERED, Outcome.DELIVERED]
    assert cis.files() == outbox(settings)
    assert sorted(cis.files()) == ["BILLDET_20261001_001.csv", "BILLDET_20261001_002.csv"]
    for name in cis.files():
        # Written under a hidden temporary name, then renamed: the CIS never sees half a file.
        (opened,) = [op for op in cis.operations if op[0] == "open" and name in op[1]]
        assert opened[1].startswith(f"./.{name}.") and opened[1].endswith(".part")
        assert ("posix_rename", opened[1], f"./{name}") in cis.operations
    for delivery in OutboxDelivery.objects.all():
        assert (delivery.status, delivery.attempts, delivery.version) == (Status.DELIVERED, 1, 1)
        assert [a.outcome for a in delivery.attempt_log.all()] == [Outcome.DELIVERED]
    page = delivery_log_page(bill)
    assert "BILLDET_20261001_001.csv" in page and "Delivered" in page


def test_a_server_that_is_down_gets_the_file_once_it_is_back(cis: SftpServer, settings: Any, bill: Any) -> None:
    outbox_write(run_date=OCT)
    t0 = dt.datetime.now(tz=dt.UTC)
    assert deliver_due(t0) == [Outcome.FAILED]
    delivery = OutboxDelivery.objects.get()
    assert delivery.status == Status.FAILED and "cannot reach 127.0.0.1" in delivery.last_error
    assert delivery.next_attempt_at == t0 + dt.timedelta(seconds=0.2)

    cis.start()
    # Not before its backoff...
    assert deliver_due(t0 + dt.timedelta(seconds=0.1)) == []
    # ...then once it is due.
    assert deliver_due(t0 + dt.timedelta(seconds=0.3)) == [Outcome.DELIVERED]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.DELIVERED, 2)
    assert [a.outcome for a in delivery.attempt_log.order_by("started_at")] == [Outcome.FAILED, Outcome.DELIVERED]
    assert cis.files() == outbox(settings)
    page = delivery_log_page(bill)
    assert "cannot reach 127.0.0.1" in page and "Delivered" in page


def test_a_server_with_another_host_key_is_refused_and_nothing_is_sent(
    cis: SftpServer, settings: Any, bill: Any
) -> None:
    cis.start()
    impostor_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    settings.BILLING_SFTP_KNOWN_HOST_KEY = impostor_key
    outbox_write(run_date=OCT)
    assert deliver_due() == [Outcome.REFUSED]
    assert cis.operations == [] and cis.files() == {}
    delivery = OutboxDelivery.objects.get()
    assert delivery.status == Status.FAILED and delivery.last_error.startswith("host key refused")
    (attempt,) = delivery.attempt_log.all()
    assert attempt.outcome == Outcome.REFUSED and "does not present the configured key" in attempt.error
    page = delivery_log_page(bill)
    assert "Refused" in page and "host key refused" in page


def test_a_rerun_that_changes_nothing_sends_nothing_and_a_changed_file_goes_again(
    cis: SftpServer, settings: Any
) -> None:
    cis.start()
    release_in_batches(OCT, 2)
    outbox_write(run_date=OCT)
    assert deliver_due() == [Outcome.DELIVERED, Outcome.DELIVERED]
    operations, deliveries = list(cis.operations), OutboxDelivery.objects.count()

    release_in_batches(OCT, 2)
    outbox_write(run_date=OCT)  # the same determinants: identical files, written anew
    assert deliver_due() == []
    assert cis.operations == operations and OutboxDelivery.objects.count() == deliveries
    # The rewrite was hashed once; its time is remembered, so later sweeps need not read it again.
    for delivery in OutboxDelivery.objects.all():
        stat = (Path(settings.BILLING_OUTBOX_DIR) / delivery.file_name).stat()
        assert (delivery.size_bytes, delivery.file_mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    # Re-batched: the first file now holds all three accounts, the second leaves the outbox.
    release_in_batches(OCT, 10)
    outbox_write(run_date=OCT)
    assert deliver_due() == [Outcome.DELIVERED]
    first = OutboxDelivery.objects.filter(file_name="BILLDET_20261001_001.csv").order_by("version")
    assert [(d.version, d.status) for d in first] == [(1, Status.DELIVERED), (2, Status.DELIVERED)]
    assert cis.files()["BILLDET_20261001_001.csv"] == outbox(settings)["BILLDET_20261001_001.csv"]
    assert deliver_due() == []


def test_delivery_is_off_without_a_host(cis: SftpServer, settings: Any) -> None:
    settings.BILLING_SFTP_HOST = ""
    outbox_write(run_date=OCT)
    assert deliver_due() == []
    assert not OutboxDelivery.objects.exists()


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"BILLING_SFTP_HOST": "cis.example", "BILLING_SFTP_USER": ""}, "BILLING_SFTP_USER"),
        ({"BILLING_SFTP_PORT": "70000"}, "BILLING_SFTP_PORT"),
        ({"BILLING_SFTP_RETRY_BASE_S": "never"}, "BILLING_SFTP_RETRY_BASE_S"),
        (
            {
                "BILLING_SFTP_HOST": "cis.example",
                "BILLING_SFTP_USER": "cis",
                "BILLING_SFTP_KEY_FILE": "/nonexistent/id_ed25519",
                "BILLING_SFTP_KNOWN_HOST_KEY": "ssh-ed25519 AAAA",
            },
            "BILLING_SFTP_KEY_FILE",
        ),
        (
            {
                "BILLING_SFTP_HOST": "cis.example",
                "BILLING_SFTP_USER": "cis",
                "BILLING_SFTP_KEY_FILE": __file__,
                "BILLING_SFTP_KNOWN_HOST_KEY": "not a key",
            },
            "BILLING_SFTP_KNOWN_HOST_KEY",
        ),
    ],
)
def test_a_bad_sftp_setting_fails_at_start_with_its_name(variables: dict[str, str], named: str) -> None:
    result = start_django_with(variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and named in result.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("role_groups")  # before september's people: an earlier flush empties auth_group
def test_the_delivery_task_retries_with_backoff_until_the_server_is_back(cis: SftpServer, settings: Any) -> None:
    """Through the real broker and a Celery worker: the sweep queues the task, which fails while the
    server is down and retries itself after its backoff until the file is delivered."""
    from celery.contrib.testing.worker import start_worker

    from billing.tasks import outbox_sweep as sweep_task
    from ingest.testing import wait_for
    from mdms.celery import app

    outbox_write(run_date=OCT)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=15):
        sweep_task.delay()
        wait_for(
            lambda: OutboxDeliveryAttempt.objects.filter(outcome=Outcome.FAILED).count() >= 2,
            60,
            "two failed tries while the server is down",
        )
        cis.start()
        wait_for(lambda: OutboxDelivery.objects.filter(status=Status.DELIVERED).exists(), 60, "the delivery")
    delivery = OutboxDelivery.objects.get()
    outcomes = [a.outcome for a in delivery.attempt_log.order_by("started_at")]
    assert outcomes[-1] == Outcome.DELIVERED and set(outcomes[:-1]) == {Outcome.FAILED}
    assert delivery.attempts == len(outcomes)
    starts = [a.started_at for a in delivery.attempt_log.order_by("started_at")]
    # The backoff doubles from 0.2 s: each wait is at least the one its attempt asked for.
    for n, (earlier, later) in enumerate(itertools.pairwise(starts), start=1):
        assert (later - earlier).total_seconds() >= min(2.0, 0.2 * 2 ** (n - 1)) - 0.05
    assert cis.files() == outbox(settings)


def test_the_command_delivers_now_and_a_second_run_sends_nothing(cis: SftpServer, settings: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    cis.start()
    release_in_batches(OCT, 2)
    outbox_write(run_date=OCT)
    out = StringIO()
    call_command("outbox_deliver", stdout=out, stderr=StringIO())
    assert "2 new file version(s); 2 to send" in out.getvalue()
    assert "BILLDET_20261001_002.csv: delivered" in out.getvalue()
    assert cis.files() == outbox(settings)
    again = StringIO()
    call_command("outbox_deliver", stdout=again, stderr=StringIO())
    assert "0 new file version(s); 0 to send" in again.getvalue()
