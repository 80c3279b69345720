"""Actuals that replace estimates: the rollups follow, an issued bill never changes, and a re-bill is
proposed to billing staff (once) when the difference is above the thresholds.

September 2026 at 0.25 kWh a quarter, with the hour of Thursday the 10th from 18:00 to 19:00 (local)
missing: the bill run of 1 October estimates it by interpolation (4 x 0.25 = 1.0 kWh) and bills
2,876 x 0.25 + 1.0 = 720.0 kWh, 10.00 + 720 x 0.25 = 190.00. The meter's actuals for that hour
arrive afterwards through the ingest's functions (and, in the last test, over MQTT through the real
worker).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill, EstimateReplacement, VeeException
from billing.rebill_proposals import (
    Difference,
    rebill_proposal_accept,
    rebill_proposal_dismiss,
    rebill_proposals_judge,
)
from billing.rollups import rollups_follow
from billing.tests.bills_helpers import interval_ends, local, readings, store_and_roll_up
from ingest import pipeline
from mdms.core.models import AuditLog
from mdms.core.mqtt import topics
from mdms.core.timeseries import ROLLUPS_DAILY, collection

RUN_DATE = dt.date(2026, 10, 1)
GAP_DAY = dt.date(2026, 9, 10)
GAP = [
    ts for ts in interval_ends(GAP_DAY, GAP_DAY + dt.timedelta(days=1)) if local(GAP_DAY, 18) < ts <= local(GAP_DAY, 19)
]


def _follow() -> None:
    while rollups_follow(count=500, budget_s=60).batches:
        pass
    rebill_proposals_judge()


def send_actuals(serial: str, kwh: float) -> None:
    """The lost hour arrives late, through the ingest's own functions, then the follower runs."""
    block = [{"ts": ts.isoformat(), "interval_s": 900, "energy_import_kwh": kwh} for ts in GAP]
    batch = pipeline.Batch()
    message = pipeline.Message(
        topics.topic(serial, topics.Kind.READINGS), json.dumps(block).encode(), dt.datetime.now(tz=dt.UTC)
    )
    pipeline.process_message(message, batch, pipeline.MeterCache())
    pipeline.flush(batch, pipeline.Watermarks(), live=False)
    _follow()


def bill_september(person: Any) -> Bill:
    documents = readings(person.meter.pk, dt.date(2026, 9, 1), RUN_DATE, energy=lambda ts: None if ts in GAP else 0.25)
    store_and_roll_up(documents, [person.meter.pk], dt.date(2026, 9, 1), RUN_DATE)
    _follow()
    run = bill_run_execute(run=bill_run_create(run_date=RUN_DATE))
    assert not run.holds and not run.errors, run.holds or run.errors
    issued = Bill.objects.get(account=person.account, is_current=True)
    assert (issued.import_kwh, issued.estimated_kwh, issued.total) == (
        Decimal("720.000"),
        Decimal("1.000"),
        Decimal("190.00"),
    )
    return issued


def proposals() -> list[VeeException]:
    return list(VeeException.objects.filter(kind=VeeException.Kind.REBILL_PROPOSED))


@pytest.fixture
def issued(alice: Any, mongo: Any) -> Bill:
    return bill_september(alice)


def test_an_actual_replacing_a_billed_estimate_leaves_the_bill_and_proposes_a_rebill_once(
    alice: Any, issued: Bill
) -> None:
    send_actuals(alice.meter.serial, 1.5)
    # The rollups follow: the 10th holds 92 x 0.25 + 4 x 1.5 = 29.0 kWh, nothing estimated.
    day = collection(ROLLUPS_DAILY).find_one({"meter": alice.meter.pk, "day": GAP_DAY.isoformat()})
    assert day is not None
    assert (day["total_import_kwh"], day["estimated_intervals"]) == (29.0, 0)
    # The bill as issued has not changed.
    bill = Bill.objects.get(pk=issued.pk)
    assert (bill.is_current, bill.import_kwh, bill.total, bill.version) == (
        True,
        Decimal("720.000"),
        Decimal("190.00"),
        1,
    )
    (proposal,) = proposals()
    assert proposal.status == VeeException.Status.OPEN
    assert proposal.meter == alice.meter
    detail = proposal.detail
    # Re-billed: 720.0 - 1.0 + 6.0 = 725.0 kWh and 10.00 + 725 x 0.25 = 191.25.
    assert (detail["bill"], detail["delta_import_kwh"], detail["delta_amount"]) == (issued.pk, "5.000", "1.25")
    assert (detail["issued"]["total"], detail["rebill"]["total"]) == ("190.00", "191.25")
    assert (detail["intervals"], detail["estimate_import_kwh"], detail["actual_import_kwh"]) == (4, 1.0, 6.0)
    rows = list(EstimateReplacement.objects.order_by("ts"))
    assert [row.ts for row in rows] == GAP
    assert {(row.outcome, row.estimate_method, row.estimate_import_kwh, row.actual_import_kwh) for row in rows} == {
        (EstimateReplacement.Outcome.PROPOSED, "linear", 0.25, 1.5)
    }

    # The same actuals again (a re-send): one proposal still, nothing judged twice.
    send_actuals(alice.meter.serial, 1.5)
    assert [p.pk for p in proposals()] == [proposal.pk]
    assert EstimateReplacement.objects.count() == 4


def test_a_difference_below_the_thresholds_proposes_nothing(alice: Any, issued: Bill, settings: Any) -> None:
    settings.REBILL_PROPOSAL_MIN_KWH = 10.0
    settings.REBILL_PROPOSAL_MIN_AMOUNT = 5.0
    send_actuals(alice.meter.serial, 1.5)  # 5.0 kWh and 1.25 more: below both
    assert proposals() == []
    assert set(EstimateReplacement.objects.values_list("outcome", flat=True)) == {"below_threshold"}
    assert Bill.objects.get(pk=issued.pk).is_current


@pytest.mark.parametrize(
    ("rule", "min_kwh", "min_amount", "proposed"),
    [
        ("either", 1.0, 5.0, True),  # 5 kWh is above 1 kWh
        ("either", 10.0, 1.0, True),  # 1.25 is above 1.00
        ("either", 10.0, 5.0, False),
        ("both", 1.0, 5.0, False),  # energy yes, money no
        ("both", 1.0, 1.0, True),
        ("either", 5.0, 1.25, False),  # strictly above: equal is not enough
        ("both", 0.0, 0.0, True),
    ],
)
def test_the_thresholds_compare_energy_and_or_money(
    settings: Any, rule: str, min_kwh: float, min_amount: float, proposed: bool
) -> None:
    settings.REBILL_PROPOSAL_RULE = rule
    settings.REBILL_PROPOSAL_MIN_KWH = min_kwh
    settings.REBILL_PROPOSAL_MIN_AMOUNT = min_amount
    difference = Difference(import_kwh=Decimal("-5.000"), export_kwh=Decimal("0.000"), amount=Decimal("-1.25"))
    assert difference.worth_proposing() is proposed


def test_no_difference_is_never_worth_a_proposal(settings: Any) -> None:
    settings.REBILL_PROPOSAL_MIN_KWH = 0.0
    settings.REBILL_PROPOSAL_MIN_AMOUNT = 0.0
    assert not Difference(Decimal(0), Decimal(0), Decimal(0)).worth_proposing()


def test_accepting_rebills_through_the_rebill_path_and_closes_the_proposal(alice: Any, bill: Any, issued: Bill) -> None:
    send_actuals(alice.meter.serial, 1.5)
    (proposal,) = proposals()
    new = rebill_proposal_accept(proposal=proposal, user=bill)
    assert (new.version, new.import_kwh, new.estimated_kwh, new.total) == (
        2,
        Decimal("725.000"),
        Decimal("0.000"),
        Decimal("191.25"),
    )
    old = Bill.objects.get(pk=issued.pk)
    assert (old.is_current, old.total) == (False, Decimal("190.00"))
    proposal.refresh_from_db()
    assert proposal.status == VeeException.Status.RESOLVED
    assert proposal.resolved_by == bill
    assert proposal.resolution == "Re-billed: version 2, 191.25 EUR (was 190.00)."
    audit = AuditLog.objects.get(action=AuditLog.Action.REBILL)
    assert audit.detail["replaces"] == issued.pk
    assert audit.actor == bill
    with pytest.raises(ValidationError, match="already been worked"):
        rebill_proposal_accept(proposal=proposal, user=bill)


def test_dismissing_keeps_the_bill_and_the_same_actuals_do_not_propose_again(
    alice: Any, bill: Any, issued: Bill
) -> None:
    send_actuals(alice.meter.serial, 1.5)
    (proposal,) = proposals()
    with pytest.raises(ValidationError, match="Say why"):
        rebill_proposal_dismiss(proposal=proposal, user=bill, reason="  ")
    rebill_proposal_dismiss(proposal=proposal, user=bill, reason="customer already credited by phone")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.resolution) == ("resolved", "Dismissed: customer already credited by phone")
    send_actuals(alice.meter.serial, 1.5)
    proposal.refresh_from_db()
    assert proposal.status == VeeException.Status.RESOLVED
    assert Bill.objects.filter(account=alice.account).count() == 1


def test_only_billing_staff_work_a_proposal(alice: Any, olivia: Any, issued: Bill) -> None:
    send_actuals(alice.meter.serial, 1.5)
    (proposal,) = proposals()
    for user in (alice.user, olivia):
        with pytest.raises(PermissionDenied):
            rebill_proposal_accept(proposal=proposal, user=user)
        with pytest.raises(PermissionDenied):
            rebill_proposal_dismiss(proposal=proposal, user=user, reason="no")
    assert Bill.objects.filter(account=alice.account).count() == 1


def test_an_actual_before_any_bill_replaces_the_estimate_and_proposes_nothing(alice: Any, mongo: Any) -> None:
    from billing.vee.services import vee_run

    documents = readings(alice.meter.pk, dt.date(2026, 9, 1), RUN_DATE, energy=lambda ts: None if ts in GAP else 0.25)
    store_and_roll_up(documents, [alice.meter.pk], dt.date(2026, 9, 1), RUN_DATE)
    vee_run(meter_pks=[alice.meter.pk], first_day=GAP_DAY, end_day=GAP_DAY + dt.timedelta(days=1))
    send_actuals(alice.meter.serial, 1.5)
    assert set(EstimateReplacement.objects.values_list("outcome", flat=True)) == {"not_billed"}
    assert proposals() == []
    run = bill_run_execute(run=bill_run_create(run_date=RUN_DATE))
    assert not run.holds
    billed = Bill.objects.get(account=alice.account)
    assert (billed.import_kwh, billed.estimated_kwh) == (Decimal("725.000"), Decimal("0.000"))


def test_a_measured_reading_without_an_estimate_is_no_replacement(alice: Any, issued: Bill) -> None:
    # Readings of 1 September sent again, identical: no estimate stood there.
    block = [{"ts": ts.isoformat(), "interval_s": 900, "energy_import_kwh": 0.25}
             for ts in interval_ends(dt.date(2026, 9, 1), dt.date(2026, 9, 2))]  # fmt: skip
    batch = pipeline.Batch()
    message = pipeline.Message(
        topics.topic(alice.meter.serial, topics.Kind.READINGS), json.dumps(block).encode(), dt.datetime.now(tz=dt.UTC)
    )
    pipeline.process_message(message, batch, pipeline.MeterCache())
    pipeline.flush(batch, pipeline.Watermarks(), live=False)
    _follow()
    assert EstimateReplacement.objects.count() == 0
    assert proposals() == []
