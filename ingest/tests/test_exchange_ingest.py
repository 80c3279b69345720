"""After an exchange, each meter's data is kept to its own side of the exchange moment."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ingest import pipeline
from ingest.tests.test_pipeline import ingest, message
from mdms.core import services
from mdms.core.models import Meter
from mdms.core.mqtt import topics
from mdms.core.timeseries import DEAD_LETTERS, collection
from mdms.core.timeseries import readings as store

AT = dt.datetime(2026, 11, 20, 13, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=15)


def block(first_end: dt.datetime, n: int) -> list[dict[str, Any]]:
    return [{"ts": (first_end + i * STEP).isoformat(), "interval_s": 900, "energy_import_kwh": 0.25} for i in range(n)]


@pytest.fixture
def exchanged(alice: Any) -> Meter:
    services.meter_exchange(
        premise=alice.account.premise, old_meter=alice.meter, new_meter_serial="NEW-ALICE", at=AT,
        old_final_register_kwh=Decimal("500"), new_initial_register_kwh=Decimal("0"),
    )  # fmt: skip
    return Meter.objects.get(serial="NEW-ALICE")


def test_a_late_reading_from_before_removal_is_accepted_and_one_after_it_is_a_dead_letter(
    alice: Any, exchanged: Meter, mongo: Any
) -> None:
    # Four intervals ending 12:30, 12:45, 13:00 (the exchange) and 13:15: the last is after removal.
    batch = ingest([message(alice.meter.serial, block(AT - 2 * STEP, 4))])
    rows = store.readings_for_meter(alice.meter.pk, None, None)
    assert [row["ts"] for row in rows] == [AT - 2 * STEP, AT - STEP, AT]
    assert batch.counts["stored"] == 3
    assert batch.reasons == {"after_removal": 1}
    dead = collection(DEAD_LETTERS).find_one({"serial": alice.meter.serial, "reason_code": "after_removal"})
    assert dead is not None
    assert dead["reason"] == f"{(AT + STEP).isoformat()} is after the meter's removal at {AT.isoformat()}"


def test_the_new_meter_has_nothing_from_before_its_installation(exchanged: Meter, mongo: Any) -> None:
    batch = ingest([message(exchanged.serial, block(AT - STEP, 3))])
    rows = store.readings_for_meter(exchanged.pk, None, None)
    assert [row["ts"] for row in rows] == [AT + STEP]
    assert batch.reasons == {"before_installation": 2}


def test_a_removed_meters_event_after_removal_is_refused_and_one_before_is_kept(alice: Any, exchanged: Meter) -> None:
    batch = pipeline.Batch()
    meters = pipeline.MeterCache()
    for ts in (AT - STEP, AT + STEP):
        pipeline.process_message(
            message(alice.meter.serial, {"ts": ts.isoformat(), "type": "power_off"}, topics.Kind.EVENTS), batch, meters
        )
    assert [event["ts"] for event in batch.events] == [AT - STEP]
    assert batch.reasons == {"after_removal": 1}


def test_a_meter_removed_without_a_moment_stays_refused_as_before(alice: Any) -> None:
    Meter.objects.filter(pk=alice.meter.pk).update(status=Meter.Status.REMOVED)
    batch = pipeline.Batch()
    pipeline.process_message(message(alice.meter.serial, block(AT, 1)), batch, pipeline.MeterCache())
    assert batch.reasons == {"disabled_meter": 1}
