"""Missing reads fetched before billing, against the real broker, simulated meters, the real ingest
and the real dispatcher: a billing date with 3 meters silent at the lead time."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from billing.models import DeterminantDelivery
from billing.outbox import outbox_write
from billing.read_fetch import fetch_missing_reads, fetched_reads_collect
from billing.tests.bills_helpers import store_and_roll_up
from commands.dispatcher import Dispatcher
from commands.models import MeterCommand
from commands.tests.conftest import wait_for
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from ingest.simulator.runner import Behaviour, Fleet
from ingest.testing import RunningWorker, drop_session
from mdms.core.localtime import day_bounds
from mdms.core.mqtt import broker
from mdms.core.testing import Person, broker_accounts_delete, make_consumer
from mdms.core.timeseries import readings as stored
from portal.api.testing import token_client

pytestmark = [pytest.mark.slow]

RUN_DATE = dt.date(2026, 11, 15)  # the period 15 October to 15 November
PERIOD = (dt.date(2026, 10, 15), RUN_DATE)


def quarter_hours(meter_pk: int, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """0.25 kWh every 15 minutes ending in (start, end], with the import register running along."""
    documents, register, ts = [], 1000.0, start + dt.timedelta(minutes=15)
    while ts <= end:
        register += 0.25
        documents.append(
            stored.reading_document(
                meter_pk=meter_pk,
                ts=ts,
                received_at=timezone.now(),
                interval_s=900,
                values={"energy_import_kwh": 0.25, "register_import_kwh": round(register, 3)},
            )
        )
        ts += dt.timedelta(minutes=15)
    return documents


@pytest.fixture
def accounts(
    transactional_db: None, role_groups: None, mongo: Any, django_capture_on_commit_callbacks: Any
) -> Iterator[list[Person]]:
    """Five accounts billed on the 15th: two complete, three whose meters fell silent 6 hours before
    the period's end (no closing read, 24 intervals missing)."""
    tag = uuid.uuid4().hex[:5]
    with django_capture_on_commit_callbacks(execute=True):
        people = [make_consumer(f"rf{tag}{n}", bill_cycle_day=15, move_in=dt.date(2026, 1, 1)) for n in range(5)]
    start, _ = day_bounds(PERIOD[0])
    end, _ = day_bounds(RUN_DATE)
    documents: list[dict[str, Any]] = []
    for n, person in enumerate(people):
        until = end + dt.timedelta(hours=1) if n < 2 else end - dt.timedelta(hours=6)
        documents += quarter_hours(person.meter.pk, start, until)
    store_and_roll_up(documents, [p.meter.pk for p in people], PERIOD[0], RUN_DATE + dt.timedelta(days=1))
    yield people
    broker_accounts_delete(people)


@pytest.fixture
def field(accounts: list[Person]) -> Iterator[dict[str, SimulatedMeter]]:
    """The three silent meters on the broker again, answering commands: two answer, one never."""
    silent = accounts[2:]
    meters = {p.meter.serial: SimulatedMeter(profile_for(p.meter.serial, seed=5, has_solar=False), 5) for p in silent}
    fleet = Fleet(
        list(meters.values()),
        {p.meter.serial: p.mqtt_password for p in silent},
        behaviours={silent[2].meter.serial: Behaviour.NEVER},
        session_expiry_s=0,
    )
    assert len(fleet.connect(timeout_s=30)) == 3
    stop = threading.Event()
    pumping = threading.Thread(target=lambda: [fleet.pump(0.02) for _ in iter(stop.is_set, True)], daemon=True)
    pumping.start()
    yield meters
    stop.set()
    pumping.join(10)
    fleet.close()


@pytest.fixture
def pipeline(accounts: list[Person]) -> Iterator[None]:
    broker.ensure_ingest_account()
    worker = RunningWorker("test-read-fetch", session_expiry_s=0)
    dispatcher = Dispatcher(rate_per_s=100)
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    yield
    dispatcher.stop()
    thread.join(30)
    worker.stop()
    drop_session(worker.worker.client_id)


def test_three_silent_meters_at_the_lead_time_come_in_later_batches(
    accounts: list[Person], field: dict[str, SimulatedMeter], pipeline: None, settings: Any, tmp_path: Path
) -> None:
    settings.COMMANDS_RETRY_BASE_S = 1.0
    complete, answering, mute = accounts[:2], accounts[2:4], accounts[4]
    counts = fetch_missing_reads(run_date=RUN_DATE, until=timezone.now() + dt.timedelta(seconds=12))
    assert counts == {"complete": 2, "fetching": 3, "already": 0}
    # Batch 1 leaves the silent meters out, and the CIS can ask which accounts are pending.
    cis = token_client("billing")
    first = cis.get("/api/v1/determinants/", {"date": RUN_DATE, "batch": 1}).json()["results"]
    assert [r["account_number"] for r in first] == [p.account.number for p in complete]
    assert all(r["closing_read"] == "stored" and r["closing_register_kwh"] for r in first)
    pending = cis.get("/api/v1/determinants/pending/", {"date": RUN_DATE}).json()["results"]
    assert sorted(r["account_number"] for r in pending) == sorted(p.account.number for p in accounts[2:])
    assert all(r["command_id"] and r["reason"] == "no closing register read" for r in pending)

    # Read commands went out; two meters answer, and batch 2 holds them with measured (fetched) reads.
    def answered() -> bool:
        return MeterCommand.objects.filter(meter__in=[p.meter for p in answering], status="completed").count() == 2

    wait_for(answered, what="two meters to answer their read commands")
    assert fetched_reads_collect(run_date=RUN_DATE) == {"fetched": 2, "estimated": 0}
    second = cis.get("/api/v1/determinants/", {"date": RUN_DATE, "batch": 2}).json()["results"]
    assert sorted(r["account_number"] for r in second) == sorted(p.account.number for p in answering)
    for row in second:
        serial = next(p.meter.serial for p in answering if p.account.number == row["account_number"])
        assert row["closing_read"] == "fetched" and not row["final_batch"]
        assert float(row["closing_register_kwh"]) == field[serial].register_import_wh / 1000

    # The third never answers: after its retries it ends in the final batch, estimated and flagged.
    mute_command = DeterminantDelivery.objects.get(run_date=RUN_DATE, account=mute.account).command
    assert mute_command is not None
    wait_for(lambda: MeterCommand.objects.get(pk=mute_command.pk).status == "expired", what="the mute read to expire")
    assert MeterCommand.objects.get(pk=mute_command.pk).attempts >= 2
    assert fetched_reads_collect(run_date=RUN_DATE) == {"fetched": 0, "estimated": 1}
    final = cis.get("/api/v1/determinants/", {"date": RUN_DATE, "batch": 3}).json()["results"]
    assert [r["account_number"] for r in final] == [mute.account.number]
    assert final[0]["final_batch"] and final[0]["closing_read"] == "estimated"
    assert cis.get("/api/v1/determinants/pending/", {"date": RUN_DATE}).json()["count"] == 0

    # The files follow the batches; running it all again changes nothing.
    names = [p.name for p in outbox_write(run_date=RUN_DATE, directory=tmp_path)]
    assert names == ["BILLDET_20261115_001.csv", "BILLDET_20261115_002.csv", "BILLDET_20261115_003.csv"]
    assert fetch_missing_reads(run_date=RUN_DATE)["already"] == 5
    assert fetched_reads_collect(run_date=RUN_DATE) == {"fetched": 0, "estimated": 0}
    assert MeterCommand.objects.filter(kind="read").count() == 3
