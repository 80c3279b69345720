"""End to end through the real MQTT ingest worker: a meter publishes the hour it failed to send, after
its bill was issued with that hour estimated; the follower task recomputes the rollups and proposes
the re-bill once, however often the meter sends the hour again (see test_rebill_proposals for the
arithmetic: 720.0 kWh billed with 1.0 kWh estimated; the actuals bring 6.0)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group

from billing.models import Bill, EstimateReplacement, VeeException
from billing.tasks import follow_stored_batches
from billing.tests.test_rebill_proposals import GAP, GAP_DAY, bill_september
from ingest import counters
from ingest.testing import RunningWorker, drop_session, wait_for
from ingest.tests.test_worker import Meter as PublishingMeter
from mdms.core.mqtt import broker
from mdms.core.roles import Role
from mdms.core.testing import make_consumer
from mdms.core.timeseries import ROLLUPS_DAILY, collection
from mdms.core.timeseries import readings as store

# transaction=True: the meter's registration commits, so the broker gives it its account.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(mongo: Any) -> Iterator[RunningWorker]:
    broker.ensure_ingest_account()
    running = RunningWorker("test-rebill")
    yield running
    running.stop(timeout=10)
    drop_session(running.worker.client_id)


def test_late_actuals_over_mqtt_replace_a_billed_estimate_and_propose_one_rebill(worker: RunningWorker) -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.value)
    carol = make_consumer(f"carol{uuid.uuid4().hex[:4]}")
    issued = bill_september(carol)
    meter = PublishingMeter(carol)
    try:
        hour = [{"ts": ts.isoformat(), "interval_s": 900, "energy_import_kwh": 1.5} for ts in GAP]
        meter.publish(hour).wait_for_publish(10)
        wait_for(lambda: len(store.readings_for_meter(carol.meter.pk, GAP[0], GAP[-1] + (GAP[1] - GAP[0]))) == 4,
                 what="the late hour stored")  # fmt: skip
        follow_stored_batches()
        day = collection(ROLLUPS_DAILY).find_one({"meter": carol.meter.pk, "day": GAP_DAY.isoformat()})
        assert day is not None
        assert (day["total_import_kwh"], day["estimated_intervals"]) == (29.0, 0)
        (proposal,) = VeeException.objects.filter(kind=VeeException.Kind.REBILL_PROPOSED)
        assert (proposal.detail["delta_import_kwh"], proposal.detail["delta_amount"]) == ("5.000", "1.25")

        duplicates = counters.snapshot()["duplicates"]
        meter.publish(hour).wait_for_publish(10)
        wait_for(lambda: counters.snapshot()["duplicates"] - duplicates >= 4, what="the re-send counted as duplicates")
        follow_stored_batches()
    finally:
        meter.close()
    assert VeeException.objects.filter(kind=VeeException.Kind.REBILL_PROPOSED).count() == 1
    assert EstimateReplacement.objects.filter(meter=carol.meter, outcome="proposed").count() == 4
    bill = Bill.objects.get(pk=issued.pk)
    assert (bill.is_current, bill.import_kwh, bill.total) == (True, Decimal("720.000"), Decimal("190.00"))
