"""Every scenario file in billing/tests/scenarios: a meter's life over a bill period, run through the
ingest's own functions, the rollups, VEE, the monitoring rules and the real bill run, against the
numbers worked out by hand in the file (see scenarios/README.md for the format)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing import determinants as det
from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill, EstimateReplacement, VeeException
from billing.rebill_proposals import rebill_proposal_accept, rebill_proposals_judge
from billing.rollups import rollups_follow, rollups_rebuild
from billing.vee.services import vee_run
from billing.vee.validation import validate_day
from ingest import pipeline
from mdms.core import registers, services
from mdms.core.localtime import each_day, local_zone
from mdms.core.models import Meter, MeterExchange
from mdms.core.mqtt import topics
from mdms.core.timeseries import readings as stored
from monitoring.detection import rules
from monitoring.services import meter_specs

pytestmark = pytest.mark.django_db

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))
STEP = dt.timedelta(minutes=15)
REGISTER_RULES = ("register_backwards", "register_stuck")


def local(text: str) -> dt.datetime:
    naive = dt.datetime.strptime(text, "%Y-%m-%d %H:%M")  # noqa: DTZ007 - made aware on the next line
    return naive.replace(tzinfo=local_zone()).astimezone(dt.UTC)


@dataclass
class SimulatedMeter:
    """A meter as the scenario drives it: its register, carried on and wrapped like the real one."""

    meter: Meter
    register_kwh: float | None
    capacity_kwh: float
    first_register_kwh: float | None
    final_register_kwh: float | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    # Intervals the meter measured but whose message was lost, by their end: a `resend` delivers them.
    held: dict[dt.datetime, dict[str, Any]] = field(default_factory=dict)


def _measure(sim: SimulatedMeter, start: dt.datetime, until: dt.datetime, kwh: float) -> list[dict[str, Any]]:
    block: list[dict[str, Any]] = []
    ts = start + STEP
    while ts <= until:
        reading: dict[str, Any] = {"ts": ts.isoformat(), "interval_s": 900, "energy_import_kwh": kwh}
        if sim.register_kwh is not None:  # None: a meter that sends interval energy only
            sim.register_kwh = round(registers.advance(sim.register_kwh, kwh, capacity=sim.capacity_kwh), 3)
            reading["register_import_kwh"] = sim.register_kwh
        block.append(reading)
        ts += STEP
    return block


def _send(sim: SimulatedMeter, block: list[dict[str, Any]], dead: Counter[str]) -> None:
    batch = pipeline.Batch()
    cache = pipeline.MeterCache()
    for i in range(0, len(block), 96):
        payload = json.dumps(block[i : i + 96]).encode()
        topic = topics.topic(sim.meter.serial, topics.Kind.READINGS)
        pipeline.process_message(pipeline.Message(topic, payload, dt.datetime.now(tz=dt.UTC)), batch, cache)
    pipeline.flush(batch, pipeline.Watermarks(), live=False)
    dead.update(batch.reasons)


def _follow() -> None:
    """The ingest handed its batches on: the rollup follower takes them, as in production (a run holds
    an account whose stored readings the follower has not yet seen), then the estimates that actuals
    replaced are judged against the issued bills, as billing.tasks.follow_stored_batches does."""
    while rollups_follow(count=500, budget_s=60).batches:
        pass
    rebill_proposals_judge()


def _bill_run(run_date: dt.date, meter_pks: list[int]) -> None:
    period_start, period_end = det.cycle_period(run_date)
    rollups_rebuild(first_day=period_start, end_day=period_end, meter_pks=meter_pks)
    _follow()
    run = bill_run_execute(run=bill_run_create(run_date=run_date))
    assert not run.holds and not run.errors, f"held or failed: {run.holds} {run.errors}"


def _determinants(bill: Bill, expected: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    parts = [{**part, "meter": names[part["meter"]]} for part in bill.determinants.get("meters", [])]
    assert bool(parts) == ("meters" in expected), f"meter parts: {parts}"
    keys = [key for key in expected if key != "run_date"]
    return {key: parts if key == "meters" else bill.determinants[key] for key in keys}


def _register_consumption(sims: dict[str, SimulatedMeter]) -> tuple[float, int]:
    series = []
    for sim in sims.values():
        assert sim.first_register_kwh is not None
        values = [sim.first_register_kwh]
        values += [row["register_import_kwh"] for row in stored.readings_for_meter(sim.meter.pk, None, None)]
        if sim.final_register_kwh is not None:
            values.append(sim.final_register_kwh)
        series.append(registers.RegisterSeries(values, sim.capacity_kwh))
    return registers.consumption(series)


def _monitoring(sims: dict[str, SimulatedMeter]) -> dict[str, int]:
    counts = dict.fromkeys(REGISTER_RULES, 0)
    for sim in sims.values():
        spec = meter_specs([sim.meter.pk])[sim.meter.pk]
        previous = None
        for row in stored.readings_for_meter(sim.meter.pk, None, None):
            for finding in rules.check(spec, row, previous):
                if finding.rule in counts:
                    counts[finding.rule] += 1
            previous = row
    return counts


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, alice: Any, bill: Any, mongo: Any) -> None:
    spec = yaml.safe_load(path.read_text())
    expected = spec["expected"]
    (first_name, first), *others = spec["meters"].items()
    assert not others, "a scenario starts with the account's one meter; others come by exchange"
    Meter.objects.filter(pk=alice.meter.pk).update(register_digits=first["digits"], register_decimals=first["decimals"])
    alice.meter.refresh_from_db()
    start_register = None if first["register_kwh"] is None else float(first["register_kwh"])
    sims = {first_name: SimulatedMeter(alice.meter, start_register, alice.meter.register_capacity_kwh, start_register)}
    dead: Counter[str] = Counter()
    billed_on: dt.date | None = None
    for step in spec["timeline"]:
        (kind, args), *_ = step.items()
        if kind == "readings":
            sim = sims[args["meter"]]
            block = _measure(sim, local(args["from"]), local(args["until"]), float(args["kwh"]))
            if args.get("lost"):
                sim.held.update({dt.datetime.fromisoformat(reading["ts"]): reading for reading in block})
            else:
                _send(sim, block, dead)
        elif kind == "resend":
            sim = sims[args["meter"]]
            start, until = local(args["from"]), local(args["until"])
            _send(sim, [reading for ts, reading in sorted(sim.held.items()) if start < ts <= until], dead)
            _follow()
        elif kind == "vee":
            first_day, end_day = dt.date.fromisoformat(str(args["from"])), dt.date.fromisoformat(str(args["until"]))
            _follow()
            vee_run(meter_pks=[sim.meter.pk for sim in sims.values()], first_day=first_day, end_day=end_day)
        elif kind == "bill":
            billed_on = args["run_date"]
            _bill_run(args["run_date"], [s.meter.pk for s in sims.values()])
        elif kind == "accept_proposal":
            proposal = VeeException.objects.get(kind=VeeException.Kind.REBILL_PROPOSED, status=VeeException.Status.OPEN)
            rebill_proposal_accept(proposal=proposal, user=bill)
        elif kind == "register_step":
            sim = sims[args["meter"]]
            assert sim.register_kwh is not None
            sim.register_kwh = round(sim.register_kwh + float(args["kwh"]), 3)
        elif kind == "multiplier":
            services.meter_set_multiplier(
                meter=sims[args["meter"]].meter, multiplier=Decimal(str(args["value"])), effective_from=args["from"]
            )
        elif kind == "exchange":
            old = sims[args["old"]]
            record, _ = services.meter_exchange(
                premise=alice.account.premise,
                old_meter=old.meter,
                new_meter_serial=args["serial"],
                at=local(args["at"]),
                old_final_register_kwh=Decimal(str(args["old_final_register_kwh"])),
                new_initial_register_kwh=Decimal(str(args["new_initial_register_kwh"])),
            )
            old.final_register_kwh = float(record.old_final_register_kwh)
            initial = float(record.new_initial_register_kwh)
            new = record.new_meter
            sims[args["new"]] = SimulatedMeter(new, initial, new.register_capacity_kwh, initial)
        else:
            raise AssertionError(f"{path.name}: unknown step {kind!r}")
    for sim in sims.values():
        sim.meter.refresh_from_db()

    run_date: dt.date = expected["bill"]["run_date"]
    period_start, period_end = det.cycle_period(run_date)
    if billed_on is None:
        _bill_run(run_date, [s.meter.pk for s in sims.values()])
    else:
        assert billed_on == run_date, "the timeline's bill step runs the expected bill's date"
        _follow()
    names = {sim.meter.serial: name for name, sim in sims.items()}
    # The bill as issued (version 1): whatever arrived after it, it has not changed.
    issued = Bill.objects.get(account=alice.account, version=1, period_end=period_end)
    assert _determinants(issued, expected["bill"], names) == {
        k: v for k, v in expected["bill"].items() if k != "run_date"
    }
    if "total" in expected:
        assert str(issued.total) == expected["total"]
    if "rebill" in expected:
        current = Bill.objects.get(account=alice.account, is_current=True, period_end=period_end)
        assert current.version == 2
        rebill = {k: v for k, v in expected["rebill"].items() if k != "total"}
        assert _determinants(current, rebill, names) == rebill
        assert str(current.total) == expected["rebill"]["total"]
    else:
        assert Bill.objects.filter(account=alice.account, period_end=period_end).count() == 1

    replaced = Counter(EstimateReplacement.objects.values_list("outcome", flat=True))
    assert dict(replaced) == expected.get("replacements", {})
    proposals = list(VeeException.objects.filter(kind=VeeException.Kind.REBILL_PROPOSED))
    if "proposal" in expected:
        assert len(proposals) == 1, "one proposal, however often the same actuals arrive"
        got = {key: proposals[0].detail[key] for key in expected["proposal"] if key != "status"}
        assert {**got, "status": proposals[0].status} == expected["proposal"]
    else:
        assert proposals == []

    assert dict(dead) == expected["dead_letters"]

    if "registers" in expected:
        kwh, backwards = _register_consumption(sims)
        assert kwh == pytest.approx(expected["registers"]["kwh"], abs=1e-6)
        assert backwards == expected["registers"]["backwards_steps"]

    now = dt.datetime.now(tz=dt.UTC)
    vee: dict[str, dict[str, list[str]]] = {}
    for name, sim in sims.items():
        for day in each_day(period_start, period_end):
            for finding in validate_day(sim.meter, day, now=now):
                vee.setdefault(name, {}).setdefault(finding.kind, []).append(day.isoformat())
    assert vee == expected["vee"]

    assert _monitoring(sims) == expected["monitoring"]
    if any("exchange" in step for step in spec["timeline"]):
        assert MeterExchange.objects.filter(premise=alice.account.premise).count() == 1
