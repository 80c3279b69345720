"""On-demand reads end to end: the command over the real broker, the reply through the real ingest."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from django.utils import timezone

from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill, OnDemandRead
from billing.on_demand_reads import on_demand_read_complete, on_demand_read_request, on_demand_reads_sweep
from billing.tests.bills_helpers import local, readings, store_and_roll_up
from ingest.worker import IngestWorker
from mdms.core.mqtt import broker, topics
from mdms.core.mqtt.client import connect, ingest_credentials, new_client
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as stored

# transaction=True: the command goes out on commit, and the worker's thread must see the meter.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class AnsweringMeter:
    """A meter on the broker with its own credentials that answers read commands with its registers."""

    def __init__(self, person: Any, register_import_kwh: float) -> None:
        self.serial = person.meter.serial
        self.register_import_kwh = register_import_kwh
        self.commands: list[dict[str, Any]] = []
        self.reply: dict[str, Any] = {}
        self.subscribed = threading.Event()
        self.client = new_client(client_id=f"{self.serial}-{uuid.uuid4().hex[:6]}", username=self.serial,
                                 password=person.mqtt_password)  # fmt: skip
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the meter could not subscribe to its commands"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(topics.topic(self.serial, topics.Kind.COMMANDS), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        command = json.loads(message.payload)
        self.commands.append(command)
        self.reply = {"id": command["id"], "ts": dt.datetime.now(tz=dt.UTC).isoformat(),
                      "register_import_kwh": self.register_import_kwh, "register_export_kwh": 12.5}  # fmt: skip
        self.send_reply()

    def send_reply(self) -> None:
        self.client.publish(topics.topic(self.serial, topics.Kind.REPLIES), json.dumps(self.reply), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def worker(mongo: Any) -> Iterator[IngestWorker]:
    broker.ensure_ingest_account()
    w = IngestWorker(client_id=f"test-reads-{uuid.uuid4().hex[:8]}", flush_interval_s=0.05, session_expiry_s=0)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    wait_for(w.subscribed.is_set, 10, "the worker's subscription")
    yield w
    w.stop()
    thread.join(10)
    # End the worker's session so that it leaves the shared subscription.
    username, password = ingest_credentials()
    ender = new_client(client_id=w.client_id, username=username, password=password, clean_start=True)
    connect(ender)
    ender.loop_start()
    time.sleep(0.2)
    ender.disconnect()
    ender.loop_stop()


def test_an_on_demand_read_completes_with_the_meters_reply_through_the_ingest(worker: IngestWorker, bill: Any) -> None:
    grace = make_consumer(f"grace{uuid.uuid4().hex[:4]}")
    meter = AnsweringMeter(grace, register_import_kwh=4321.125)
    try:
        read = on_demand_read_request(meter=grace.meter, purpose=OnDemandRead.Purpose.CHECK, requested_by=bill)
        wait_for(lambda: bool(meter.commands), what="the command at the meter")
        # Another ingest worker on this broker (a running `make run`) shares the subscription group
        # and may take the reply into its own database: the meter sends the same reply again until
        # this test's worker has it (the unique (meter, id) index makes a resend harmless).
        for _ in range(10):
            try:
                wait_for(lambda: stored.reply_for(grace.meter.pk, read.command_id) is not None, 3, "the reply")
                break
            except AssertionError:
                meter.send_reply()
        assert stored.reply_for(grace.meter.pk, read.command_id) is not None
        assert meter.commands == [{"id": read.command_id, "type": "read"}]
        assert on_demand_read_complete(read=read)
    finally:
        meter.close()
    read.refresh_from_db()
    assert read.status == OnDemandRead.Status.COMPLETED
    assert (read.register_import_kwh, read.register_export_kwh) == (Decimal("4321.125"), Decimal("12.5"))
    assert not read.estimated and read.read_at is not None
    assert not on_demand_read_complete(read=read)  # a completed read stays as it is


def test_a_silent_meter_times_out_and_the_read_is_estimated_from_interval_data(mongo: Any, bill: Any) -> None:
    broker.ensure_ingest_account()
    henry = make_consumer(f"henry{uuid.uuid4().hex[:4]}")
    now = timezone.now().replace(microsecond=0)
    last_register = now - dt.timedelta(minutes=60)
    documents = []
    for k in range(8):  # 15-minute readings up to 30 minutes ago; the last two without registers
        ts = now - dt.timedelta(minutes=135 - 15 * k)
        values: dict[str, float] = {"energy_import_kwh": 0.25}
        if ts <= last_register:
            values["register_import_kwh"] = 1000.0 + k * 0.25
        documents.append(stored.reading_document(meter_pk=henry.meter.pk, ts=ts, received_at=now, values=values,
                                                 interval_s=900))  # fmt: skip
    stored.insert_readings(documents)
    read = on_demand_read_request(meter=henry.meter, purpose=OnDemandRead.Purpose.CHECK, requested_by=bill, timeout_s=1)
    assert on_demand_reads_sweep(now=now) == {"completed": 0, "timed_out": 0, "pending": 1}
    time.sleep(1.2)
    assert on_demand_reads_sweep() == {"completed": 0, "timed_out": 1, "pending": 0}
    read.refresh_from_db()
    assert read.status == OnDemandRead.Status.TIMED_OUT and read.estimated
    # The last register (1001.25, an hour ago) plus the two intervals measured after it.
    assert read.register_import_kwh == Decimal("1001.750")
    assert read.read_at == now - dt.timedelta(minutes=30)
    assert "estimated" in read.note


def test_a_move_out_read_produces_a_final_bill_up_to_the_read(mongo: Any, bill: Any) -> None:
    ida = make_consumer(f"ida{uuid.uuid4().hex[:4]}")
    store_and_roll_up(readings(ida.meter.pk, dt.date(2026, 11, 1), dt.date(2026, 11, 20)), [ida.meter.pk],
                      dt.date(2026, 11, 1), dt.date(2026, 11, 20))  # fmt: skip
    read = on_demand_read_request(meter=ida.meter, purpose=OnDemandRead.Purpose.MOVE_OUT, account=ida.account,
                                  requested_by=bill)  # fmt: skip
    read_at = local(dt.date(2026, 11, 15), 10, 0).astimezone(dt.UTC)
    # Requested on 15 November just before the meter answered (a reply far from its request is not trusted).
    OnDemandRead.objects.filter(pk=read.pk).update(requested_at=read_at - dt.timedelta(minutes=2))
    read.refresh_from_db()
    # The meter's reply as the ingest stores it.
    stored.insert_replies([{"meter": ida.meter.pk, "id": read.command_id, "ts": read_at, "register_import_kwh": 5000.0,
                            "register_export_kwh": None, "received_at": read_at}])  # fmt: skip
    assert on_demand_read_complete(read=read)
    final = Bill.objects.get(account=ida.account)
    assert final.kind == Bill.Kind.FINAL and final.final_read_id == read.pk
    assert (final.period_start, final.period_end) == (dt.date(2026, 11, 1), dt.date(2026, 11, 16))
    assert final.import_kwh == Decimal(14 * 24 + 10)  # up to the read at 10:00, not to midnight
    assert final.line_items.get(code="fixed").amount == Decimal("5.00")  # 10.00 x 15/30: 1 to 15 November
    ida.account.refresh_from_db()
    assert ida.account.move_out_date == dt.date(2026, 11, 15)
    # The monthly run afterwards does not bill the moved-out account again.
    run = bill_run_execute(run=bill_run_create(run_date=dt.date(2026, 12, 1)))
    assert Bill.objects.filter(account=ida.account).count() == 1
    assert run.failed == 0
