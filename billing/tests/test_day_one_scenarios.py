"""Scenarios through the real ingest (meters publish over MQTT, the worker stores, the stream hands
batches on) and the real billing: what a utility's staff hit on their first day (issue 14, items 1, 2).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from billing.bills import HOLD_MISSING_INTERVALS, HOLD_ROLLUPS_BEHIND, bill_run_create, bill_run_execute
from billing.models import Bill, BillingRun, OnDemandRead, VeeException
from billing.on_demand_reads import on_demand_read_complete
from billing.rollups import rollups_follow, rollups_owed
from billing.tests.bills_helpers import interval_ends
from ingest.testing import RunningWorker, drop_session, wait_for
from mdms.core.models import AuditLog
from mdms.core.mqtt import broker, topics
from mdms.core.mqtt.client import connect, new_client
from mdms.core.roles import Role
from mdms.core.testing import Person, make_consumer, make_staff
from mdms.core.timeseries import readings as store
from portal.api.testing import rest_settings, token_client

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)


class Publisher:
    """A registered meter publishing over MQTT with its own credentials."""

    def __init__(self, person: Person) -> None:
        self.serial = person.meter.serial
        self.client = new_client(
            client_id=f"{self.serial}-{uuid.uuid4().hex[:6]}", username=self.serial, password=person.mqtt_password
        )
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, reason, p: connected.set() if not reason.is_failure else None
        connect(self.client)
        self.client.loop_start()
        assert connected.wait(10), "the broker refused the meter"

    def publish(self, payload: Any, kind: topics.Kind = topics.Kind.READINGS) -> None:
        self.client.publish(topics.topic(self.serial, kind), json.dumps(payload), qos=1).wait_for_publish(10)

    def days(self, first: dt.date, end: dt.date, kwh: float = 0.25) -> int:
        """One interval block per local day, as the HES sends them; returns the readings sent."""
        ends = interval_ends(first, end)
        for offset in range(0, len(ends), 96):
            block = [
                {"ts": ts.isoformat(), "interval_s": 900, "energy_import_kwh": kwh} for ts in ends[offset : offset + 96]
            ]
            self.publish(block)
        return len(ends)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def people(mongo: Any) -> Iterator[dict[str, Person]]:
    for role in Role:
        Group.objects.get_or_create(name=role.value)
    broker.ensure_ingest_account()
    tag = uuid.uuid4().hex[:4]
    found = {name: make_consumer(f"{name}{tag}") for name in ("alice", "bob", "carol")}
    yield found
    with broker.admin_session() as admin:
        admin.run([{"command": "deleteClient", "username": p.meter.serial} for p in found.values()])


@pytest.fixture
def worker(mongo: Any) -> Iterator[RunningWorker]:
    running = RunningWorker("test-scenario", session_expiry_s=60)
    yield running
    running.stop()
    drop_session(running.worker.client_id)


def _follow_all() -> None:
    while rollups_follow(count=500, budget_s=60).batches:
        pass


def _run(day: dt.date = DEC) -> BillingRun:
    return bill_run_execute(run=bill_run_create(run_date=day))


def test_a_run_never_prices_a_period_whose_rollups_lag_the_stored_readings(
    people: dict[str, Person], worker: RunningWorker
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    sent = {}
    spans = ((alice, NOV, DEC), (bob, NOV, dt.date(2026, 11, 11)), (carol, dt.date(2026, 11, 26), DEC))
    for person, first, end in spans:
        publisher = Publisher(person)
        sent[person.meter.pk] = publisher.days(first, end)
        publisher.close()
    for pk, count in sent.items():
        wait_for(lambda pk=pk, count=count: store.count_distinct_readings([pk]) == count, 60, "the month stored")

    # The rollup follower has not run: every reading is stored, none is in the rollups billing reads.
    assert rollups_owed(start=dt.datetime(2026, 10, 31, tzinfo=dt.UTC), end=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    first = _run()
    assert first.status == BillingRun.Status.COMPLETED
    assert not Bill.objects.filter(account__in=[p.account for p in people.values()]).exists()
    holds = {h["account"]: h for h in first.holds}
    assert holds[alice.account.number]["kind"] == HOLD_ROLLUPS_BEHIND
    assert "rollup" in holds[alice.account.number]["reason"]

    # Billing staff see why on the runs page.
    client = Client()
    client.force_login(make_staff("bill", Role.BILLING))
    page = client.get("/billing/").content.decode()
    assert alice.account.number in page and "not yet in the daily rollups" in page

    _follow_all()
    second = _run()
    bills = {b.account_id: b for b in Bill.objects.filter(run=second)}
    # Alice: the whole month, as stored (2,880 intervals of 0.25 kWh), nothing estimated.
    assert bills[alice.account.pk].import_kwh == Decimal("720.000")
    assert bills[alice.account.pk].estimated_kwh == Decimal("0.000")
    assert bills[alice.account.pk].determinants["intervals_missing"] == 0
    # Bob sent 10 of 30 days: the rest is estimated from his own profile, flagged, never priced as zero;
    # VEE raised its exceptions before the bill was made.
    bob_bill = bills[bob.account.pk]
    assert bob_bill.determinants["intervals_missing"] == 0
    assert bob_bill.estimated_kwh > Decimal("400")
    assert bob_bill.estimated_share > Decimal("0.6")
    assert bob_bill.line_items.get(code="energy").estimated
    exceptions = VeeException.objects.filter(meter=bob.meter, kind=VeeException.Kind.MISSING_INTERVALS)
    assert exceptions.count() == 20 and all(e.created_at <= bob_bill.created_at for e in exceptions)
    # Carol sent the last 5 days only: nothing to estimate the first 25 from, so she is held.
    assert carol.account.pk not in bills
    hold = {h["account"]: h for h in second.holds}[carol.account.number]
    assert hold["kind"] == HOLD_MISSING_INTERVALS
    assert "never billed as zero" in hold["reason"]
    assert VeeException.objects.filter(meter=carol.meter, kind=VeeException.Kind.MISSING_INTERVALS).count() == 25


def test_a_move_out_read_is_refused_for_a_meter_of_another_premise_and_a_wrong_bill_can_be_cancelled(
    people: dict[str, Person], worker: RunningWorker, settings: Any
) -> None:
    settings.REST_FRAMEWORK = rest_settings()
    alice, bob = people["alice"], people["bob"]
    api = token_client("billing")
    # Bob's meter is not at alice's premise: no read, no move-out, no final bill for alice.
    refused = api.post(
        "/api/v1/reads/",
        {"meter": bob.meter.serial, "account": alice.account.number, "purpose": "move_out"},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "account"
    assert "does not serve" in refused.json()["error"]["message"]
    alice.account.refresh_from_db()
    assert alice.account.move_out_date is None and not OnDemandRead.objects.exists()

    # The billing staff's form refuses it as well.
    staff = make_staff("bill", Role.BILLING)
    client = Client()
    client.force_login(staff)
    page = client.post(
        "/billing/reads/", {"meter": bob.meter.serial, "account": alice.account.number, "purpose": "move_out"}
    ).content.decode()
    assert "does not serve" in page and not OnDemandRead.objects.exists()

    # A month of alice's readings, rolled up; then her own meter's move-out read, answered over MQTT.
    publisher = Publisher(alice)
    sent = publisher.days(NOV, DEC)
    wait_for(lambda: store.count_distinct_readings([alice.meter.pk]) == sent, 60, "the month stored")
    _follow_all()
    created = api.post(
        "/api/v1/reads/",
        {"meter": alice.meter.serial, "account": alice.account.number, "purpose": "move_out"},
        format="json",
    )
    assert created.status_code == 201, created.content
    read = OnDemandRead.objects.get(pk=created.json()["id"])
    publisher.publish(
        {"id": read.command_id, "ts": dt.datetime.now(tz=dt.UTC).isoformat(), "register_import_kwh": 1234.5},
        topics.Kind.REPLIES,
    )
    wait_for(lambda: on_demand_read_complete(read=read), 30, "the reply stored and the read completed")
    final = Bill.objects.get(account=alice.account, kind=Bill.Kind.FINAL)
    alice.account.refresh_from_db()
    assert alice.account.move_out_date is not None
    assert final.period_end <= alice.account.move_out_date + dt.timedelta(days=1)
    publisher.close()

    # The consumer sees the bill; billing staff cancel it (issued by mistake) with a reason.
    consumer = Client()
    consumer.force_login(alice.user)
    assert consumer.get(f"/bills/{final.pk}/").status_code == 200
    response = client.post(f"/billing/bills/{final.pk}/", {"reason": "move-out entered on the wrong account"})
    assert response.status_code == 302
    final.refresh_from_db()
    assert final.cancelled_at is not None and not final.is_current and final.cancelled_by == staff
    entry = AuditLog.objects.get(action=AuditLog.Action.BILL_CANCEL)
    assert entry.target == f"bill:{final.pk}" and entry.detail["reason"] == "move-out entered on the wrong account"
    assert consumer.get(f"/bills/{final.pk}/").status_code == 404
    assert final.pk not in [b["id"] for b in _consumer_api(alice).get("/api/v1/bills/").json()["results"]]
    assert "cancelled" in client.get(f"/billing/bills/{final.pk}/").content.decode()


def _consumer_api(person: Person) -> Any:
    from portal.api.testing import session_client

    return session_client(person.user)
