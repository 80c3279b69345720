"""The simulator's life events (issue 16): a register near its capacity wraps, and a planned meter
exchange stops the old meter where the new one, registered through the MDMS's own service, carries on."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from ingest.management.commands.simulate_meters import MdmsExchanger
from ingest.simulator.faults import Fault, FaultKind, FaultPlan, LabelWriter
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from ingest.simulator.runner import Fleet, run_accelerated
from ingest.testing import RunningWorker, drop_session, wait_for
from mdms.core import registers
from mdms.core.models import AuditLog, Meter, MeterExchange
from mdms.core.mqtt import broker
from mdms.core.mqtt.topics import Kind
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as store

START = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)


def _readings(emissions: list[Any]) -> list[dict[str, Any]]:
    return [e.payload for e in emissions if e.kind is Kind.READINGS]


def test_a_register_near_its_capacity_wraps_and_the_consumption_across_it_is_right() -> None:
    plan = FaultPlan(explicit=(Fault("*", FaultKind.REGISTER_ROLLOVER, START, START, {"margin_kwh": 12.5}),))
    meter = SimulatedMeter(profile_for("ROLL0001", seed=3, has_solar=False), 3, fault_plan=plan)
    assert meter.shown_registers()[0] == 99_987.5
    emissions, labels = meter.advance(START, START + dt.timedelta(days=4))
    rows = _readings(emissions)
    values = [row["register_import_kwh"] for row in rows]
    assert all(0 <= value < 100_000 for value in values)
    drops = [k for k in range(1, len(values)) if values[k] < values[k - 1]]
    assert len(drops) == 1, "the register wraps once"
    (label,) = [f for f in labels if f.kind is FaultKind.REGISTER_ROLLOVER]
    assert label.end.isoformat().replace("+00:00", "Z") == rows[drops[0]]["ts"]
    # The MDMS's one rule for registers sees a rollover, and the consumption equals the energies sent.
    kwh, backwards = registers.consumption([registers.RegisterSeries([99_987.5, *values], 100_000.0)])
    assert kwh == pytest.approx(sum(row["energy_import_kwh"] for row in rows), abs=1e-6)
    assert backwards == 0


def test_a_uniform_plan_gives_some_meters_a_rollover_and_exchanges_rarely() -> None:
    plan = FaultPlan.uniform(0.02)
    assert plan.rates[FaultKind.METER_EXCHANGE] == pytest.approx(0.001)
    near = [s for s in (f"U{k:04d}" for k in range(400)) if plan.rollover_margin_kwh(s, seed=1) is not None]
    assert 20 <= len(near) <= 60  # 10% of 400
    assert plan.rollover_margin_kwh(near[0], seed=1) == plan.rollover_margin_kwh(near[0], seed=1)


EXCHANGE_AT = START + dt.timedelta(hours=30)
EXCHANGE = Fault("*", FaultKind.METER_EXCHANGE, EXCHANGE_AT, EXCHANGE_AT + dt.timedelta(minutes=15))


def test_an_exchange_stops_the_old_meter_and_its_successor_sends_the_rest_once() -> None:
    plan = FaultPlan(explicit=(EXCHANGE,))
    alone = SimulatedMeter(profile_for("EXC0001", seed=2, has_solar=False), 2, fault_plan=plan)
    assert len(_readings(alone.advance(START, START + dt.timedelta(days=2))[0])) == 192  # ignored when alone

    old = SimulatedMeter(profile_for("EXC0001", seed=2, has_solar=False), 2, fault_plan=plan, exchanges=True)
    before, _ = old.advance(START, START + dt.timedelta(days=2))
    assert old.exchange_due is not None and old.exchange_due.start == EXCHANGE_AT
    new = old.successor("EXC0001-NEW", at=EXCHANGE_AT)
    after, _ = new.advance(START, START + dt.timedelta(days=2))
    first, second = _readings(before), _readings(after)
    assert first[-1]["ts"] == "2026-02-03T06:00:00Z" and second[0]["ts"] == "2026-02-03T06:15:00Z"
    assert len(first) + len(second) == 192
    assert second[0]["register_import_kwh"] == second[0]["energy_import_kwh"]  # from 0


@pytest.mark.django_db
def test_the_exchanger_uses_the_mdms_service_and_rewrites_the_credentials(alice: Any, tmp_path: Path) -> None:
    credentials = tmp_path / "meters.csv"
    credentials.write_text(f"serial,password\nOTHER,x\n{alice.meter.serial},{alice.mqtt_password}\n")
    meter = SimulatedMeter(profile_for(alice.meter.serial, seed=1, has_solar=False), 1)
    meter.register_import_wh = 4_321_500
    at = dt.datetime.now(tz=dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    login = MdmsExchanger(credentials)(meter, Fault(alice.meter.serial, FaultKind.METER_EXCHANGE, at, at))
    assert login is not None and login.password
    exchange = MeterExchange.objects.get(old_meter=alice.meter)
    assert (exchange.new_meter.serial, exchange.exchanged_at, str(exchange.old_final_register_kwh)) == (
        login.serial, at, "4321.500"
    )  # fmt: skip
    assert Meter.objects.get(pk=alice.meter.pk).status == Meter.Status.REMOVED
    assert AuditLog.objects.get(action=AuditLog.Action.METER_EXCHANGE).detail["via"] == "simulator"
    rows = list(csv.DictReader(credentials.open()))
    assert [(r["serial"], r["password"]) for r in rows] == [("OTHER", "x"), (login.serial, login.password)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_fleet_exchange_over_the_broker_keeps_every_interval_on_its_own_meter(
    tmp_path: Path, mongo: Any, role_groups: None
) -> None:
    """Twenty hours backfilled over the real broker into the real ingest worker, with an exchange in the
    middle: the old meter's readings up to the moment and the new meter's after it are all stored, none
    dead-lettered, none on the wrong meter."""
    person = make_consumer("simx")
    credentials = tmp_path / "meters.csv"
    credentials.write_text(f"serial,password\n{person.meter.serial},{person.mqtt_password}\n")
    at = dt.datetime.now(tz=dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=12)
    start, end = at - dt.timedelta(hours=10), at + dt.timedelta(hours=10)
    plan = FaultPlan(explicit=(Fault("*", FaultKind.METER_EXCHANGE, at, at + dt.timedelta(minutes=15)),))
    meter = SimulatedMeter(profile_for(person.meter.serial, seed=5, has_solar=False), 5, fault_plan=plan)
    fleet = Fleet([meter], {person.meter.serial: person.mqtt_password}, exchanger=MdmsExchanger(credentials))
    labels_file = tmp_path / "labels.jsonl"
    labels = LabelWriter(labels_file)
    broker.ensure_ingest_account()
    worker = RunningWorker("test-sim-exchange")
    try:
        assert fleet.connect()
        run_accelerated(fleet, start=start, end=end, labels=labels, progress=False)
        exchange = MeterExchange.objects.get(old_meter=person.meter)
        new_pk = exchange.new_meter.pk
        stored = lambda: (store.count_distinct_readings([person.meter.pk]), store.count_distinct_readings([new_pk]))  # noqa: E731
        wait_for(lambda: stored() == (40, 40), what=f"40 and 40 readings stored, {fleet.stats}, {stored()}")
    finally:
        labels.close()
        fleet.close()
        worker.stop(timeout=10)
        drop_session(worker.worker.client_id)
    assert exchange.exchanged_at == at
    assert {json.loads(line)["kind"] for line in labels_file.read_text().splitlines()} >= {"meter_exchange"}
    old_rows = store.readings_for_meter(person.meter.pk, None, None)
    new_rows = store.readings_for_meter(new_pk, None, None)
    assert (old_rows[0]["ts"], old_rows[-1]["ts"], len(old_rows)) == (start + dt.timedelta(minutes=15), at, 40)
    assert (new_rows[0]["ts"], new_rows[-1]["ts"], len(new_rows)) == (at + dt.timedelta(minutes=15), end, 40)
    assert new_rows[0]["register_import_kwh"] == new_rows[0]["energy_import_kwh"]
    assert store.dead_letters_by_reason(serial=person.meter.serial) == {}
    assert store.dead_letters_by_reason(serial=exchange.new_meter.serial) == {}
