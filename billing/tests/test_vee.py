"""VEE against the real MongoDB and PostgreSQL: rules, estimates, edits and the exception queue."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing import selectors
from billing.models import IntervalEdit, VeeException
from billing.tests.test_rollups import QUARTER, local, quarters
from billing.vee import services as vee_services
from billing.vee.estimation import register_fit
from mdms.core.timeseries import rollups as store
from mdms.core.timeseries.readings import insert_readings

DAY = dt.date(2026, 11, 10)  # a Tuesday
NEXT = DAY + dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _paris(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Paris"


def day_readings(meter_pk: int, day: dt.date = DAY, kwh: float = 0.25) -> list[Any]:
    return quarters(meter_pk, local(day), local(day + dt.timedelta(days=1)), kwh=kwh)


def run(meter_pk: int, first: dt.date = DAY, end: dt.date = NEXT) -> vee_services.VeeRunResult:
    return vee_services.vee_run(meter_pks=[meter_pk], first_day=first, end_day=end)


def kinds(meter_pk: int) -> set[str]:
    return set(selectors.vee_exception_list(meter_pk=meter_pk).values_list("kind", flat=True))


def test_short_gap_is_interpolated_and_flagged_estimated(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    documents = day_readings(meter)
    for n, document in enumerate(documents):
        document["energy_import_kwh"] = 0.1 * (n % 10)
    # 10:00-11:00 missing (4 intervals) between 0.9 (09:45-10:00, n=39) and 0.4 (11:00-11:15, n=44).
    insert_readings(documents[:40] + documents[44:])

    result = run(meter)

    assert result.estimated_intervals == 4
    intervals = selectors.interval_usage(meter_pk=meter, start=local(DAY), end=local(NEXT))
    estimated = [i for i in intervals if i.estimated]
    assert [i.ts.strftime("%H:%M") for i in estimated] == ["10:15", "10:30", "10:45", "11:00"]
    assert [round(i.import_kwh or 0, 6) for i in estimated] == [0.8, 0.7, 0.6, 0.5]
    (usage,) = selectors.daily_usage(meter_pk=meter, start=DAY, end=NEXT)
    assert usage.estimated_import_kwh == pytest.approx(2.6)
    assert usage.estimated_intervals == 4
    assert usage.missing_intervals == 0
    assert {e["method"] for e in store.estimates_for_meter(meter, local(DAY), local(NEXT))} == {"linear"}


def test_long_gap_follows_the_meters_weekday_hour_profile(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    history = []
    for back in range(1, 15):
        for document in day_readings(meter, DAY - dt.timedelta(days=back)):
            hour = (document["ts"] - QUARTER).astimezone(selectors.local_zone()).hour
            document["energy_import_kwh"] = 0.5 if 18 <= hour < 21 else 0.1
            history.append(document)
    today = day_readings(meter, kwh=0.1)
    # 16:00 to 22:00 missing: longer than a short gap.
    insert_readings(history + today[:64] + today[88:])

    run(meter)

    estimated = [i for i in selectors.interval_usage(meter_pk=meter, start=local(DAY), end=local(NEXT)) if i.estimated]
    assert len(estimated) == 24
    by_hour = {(i.ts - QUARTER).hour: i.import_kwh for i in estimated}
    assert by_hour[16] == pytest.approx(0.1)
    assert by_hour[19] == pytest.approx(0.5)
    assert {e["method"] for e in store.estimates_for_meter(meter, local(DAY), local(NEXT))} == {"profile"}
    (usage,) = selectors.daily_usage(meter_pk=meter, start=DAY, end=NEXT)
    assert usage.estimated_import_kwh == pytest.approx(12 * 0.1 + 12 * 0.5)


def test_late_measured_reading_wins_over_its_estimate(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    documents = day_readings(meter)
    insert_readings(documents[:40] + documents[41:])
    run(meter)
    late = dict(documents[40], energy_import_kwh=0.9)

    insert_readings([late])
    run(meter)

    interval = next(
        i for i in selectors.interval_usage(meter_pk=meter, start=local(DAY), end=local(NEXT)) if i.ts == late["ts"]
    )
    assert (interval.import_kwh, interval.estimated) == (0.9, False)
    assert store.estimates_for_meter(meter, local(DAY), local(NEXT)) == []
    (usage,) = selectors.daily_usage(meter_pk=meter, start=DAY, end=NEXT)
    assert (usage.import_kwh, usage.estimated_import_kwh) == (pytest.approx(95 * 0.25 + 0.9), 0.0)


def test_edit_changes_the_value_everywhere_and_keeps_an_audit_trail(alice: Any, bill: Any, mongo: Any) -> None:
    meter = alice.meter
    documents = day_readings(meter.pk)
    insert_readings(documents)
    run(meter.pk)
    ts = documents[10]["ts"]

    first = vee_services.interval_edit(
        meter=meter, ts=ts, import_kwh=1.25, reason="meter swap, read by hand", user=bill
    )
    second = vee_services.interval_edit(meter=meter, ts=ts, import_kwh=0.5, reason="typo in the first edit", user=bill)

    trail = list(IntervalEdit.objects.filter(meter=meter, ts=ts).order_by("pk"))
    assert [(e.old_import_kwh, e.new_import_kwh, e.old_source) for e in trail] == [
        (0.25, 1.25, "measured"),
        (1.25, 0.5, "edited"),
    ]
    assert [e.edited_by for e in trail] == [bill, bill]
    assert first.reason == "meter swap, read by hand" and second.edited_at >= first.edited_at
    interval = next(
        i for i in selectors.interval_usage(meter_pk=meter.pk, start=local(DAY), end=local(NEXT)) if i.ts == ts
    )
    assert (interval.import_kwh, interval.edited, interval.estimated) == (0.5, True, False)
    (usage,) = selectors.daily_usage(meter_pk=meter.pk, start=DAY, end=NEXT)
    assert usage.import_kwh == pytest.approx(95 * 0.25 + 0.5)
    assert usage.edited_intervals == 1


def test_only_billing_staff_may_edit(alice: Any, mongo: Any) -> None:
    documents = day_readings(alice.meter.pk)
    insert_readings(documents)

    with pytest.raises(PermissionDenied):
        vee_services.interval_edit(meter=alice.meter, ts=documents[0]["ts"], import_kwh=0, reason="x", user=alice.user)

    assert not IntervalEdit.objects.exists()


def test_accepting_an_estimate_is_audited_and_it_stays_estimated(alice: Any, bill: Any, mongo: Any) -> None:
    meter = alice.meter
    documents = day_readings(meter.pk)
    insert_readings(documents[:50] + documents[51:])
    run(meter.pk)
    ts = documents[50]["ts"]

    edit = vee_services.estimate_accept(meter=meter, ts=ts, reason="", user=bill)

    assert (edit.action, edit.old_import_kwh, edit.new_import_kwh, edit.edited_by) == (
        "accept_estimate",
        0.25,
        0.25,
        bill,
    )
    assert store.estimate_for(meter.pk, ts)["accepted"] is True  # type: ignore[index]
    interval = next(
        i for i in selectors.interval_usage(meter_pk=meter.pk, start=local(DAY), end=local(NEXT)) if i.ts == ts
    )
    assert interval.estimated


def test_missing_intervals_raise_one_exception_per_day_however_often_validated(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    insert_readings(day_readings(meter)[:90])

    run(meter)
    run(meter)

    (exception,) = selectors.vee_exception_list(meter_pk=meter)
    assert (exception.kind, exception.detail["count"]) == ("missing_intervals", 6)
    assert exception.period_start == local(DAY)


def test_negative_consumption_is_flagged(alice: Any, mongo: Any) -> None:
    documents = day_readings(alice.meter.pk)
    documents[3]["energy_import_kwh"] = -0.2
    insert_readings(documents)

    run(alice.meter.pk)

    assert kinds(alice.meter.pk) == {"negative"}


def test_conflicting_duplicates_are_flagged_but_identical_ones_are_not(alice: Any, bob: Any, mongo: Any) -> None:
    for person, value in ((alice, 0.9), (bob, 0.25)):
        documents = day_readings(person.meter.pk)
        copy = dict(documents[7], energy_import_kwh=value, received_at=documents[7]["received_at"] + QUARTER)
        insert_readings([*documents, copy])
        run(person.meter.pk)

    assert kinds(alice.meter.pk) == {"conflicting_duplicate"}
    assert kinds(bob.meter.pk) == set()


def test_spike_against_the_meters_history_is_flagged(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    week = [d for back in range(1, 8) for d in day_readings(meter, DAY - dt.timedelta(days=back))]
    today = day_readings(meter)
    today[40]["energy_import_kwh"] = 6.0
    insert_readings(week + today)
    run(meter, DAY - dt.timedelta(days=7), DAY)

    run(meter)

    (spike,) = selectors.vee_exception_list(meter_pk=meter, kind="spike")
    assert spike.detail["times"] == [today[40]["ts"].isoformat()]


def test_register_delta_disagreeing_with_intervals_is_flagged(alice: Any, mongo: Any) -> None:
    documents = day_readings(alice.meter.pk)
    for n, document in enumerate(documents):
        document["register_import_kwh"] = 1000 + 0.25 * n
    documents[-1]["register_import_kwh"] += 5.0
    insert_readings(documents)

    run(alice.meter.pk)

    (mismatch,) = selectors.vee_exception_list(meter_pk=alice.meter.pk)
    assert mismatch.kind == "register_mismatch"
    assert mismatch.detail["register_delta_kwh"] - mismatch.detail["interval_sum_kwh"] == pytest.approx(5.0)


def test_readings_outside_the_installation_dates_are_flagged(alice: Any, mongo: Any) -> None:
    alice.meter.install_date = NEXT
    alice.meter.save(update_fields=["install_date"])
    insert_readings(day_readings(alice.meter.pk))

    run(alice.meter.pk)

    assert kinds(alice.meter.pk) == {"outside_installation"}


def test_resolving_an_exception_takes_it_off_the_queue_once(alice: Any, bill: Any, mongo: Any) -> None:
    insert_readings(day_readings(alice.meter.pk)[:90])
    run(alice.meter.pk)
    (exception,) = selectors.vee_exception_list(meter_pk=alice.meter.pk)

    assert vee_services.vee_exception_resolve(exception=exception, user=bill, resolution="meter was off")
    assert not vee_services.vee_exception_resolve(exception=exception, user=bill, resolution="again")

    assert not selectors.vee_exception_list(meter_pk=alice.meter.pk).exists()
    resolved = selectors.vee_exception_list(status=VeeException.Status.RESOLVED).get()
    assert (resolved.resolved_by, resolved.resolution) == (bill, "meter was off")
    run(alice.meter.pk)
    assert not selectors.vee_exception_list(meter_pk=alice.meter.pk).exists()


# Issue 14 item 8: the register says how much energy a gap hid; the estimates must add up to it.


def _with_registers(documents: list[Any], start_kwh: float = 1000.0) -> list[Any]:
    register = start_kwh
    for document in documents:
        register += document["energy_import_kwh"]
        document["register_import_kwh"] = round(register, 6)
    return documents


def test_a_gap_between_two_register_readings_sums_to_the_register_delta(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    documents = day_readings(meter)
    for n, document in enumerate(documents):
        document["energy_import_kwh"] = 0.2 if n < 40 else 0.3
    documents[40]["energy_import_kwh"] = 0.236  # the hidden hour held 0.944 kWh in all
    documents[41]["energy_import_kwh"] = 0.236
    documents[42]["energy_import_kwh"] = 0.236
    documents[43]["energy_import_kwh"] = 0.236
    _with_registers(documents)
    insert_readings(documents[:40] + documents[44:])  # 10:00-11:00 missing; registers on both sides

    run(meter)

    estimates = store.estimates_for_meter(meter, local(DAY), local(NEXT))
    assert len(estimates) == 4
    assert round(sum(e["energy_import_kwh"] for e in estimates), 6) == 0.944  # not 0.9 by interpolation alone
    assert {e["method"] for e in estimates} == {"linear+register"}
    # The interpolated shape is kept: rising from the 0.2 before towards the 0.3 after.
    values = [e["energy_import_kwh"] for e in sorted(estimates, key=lambda e: e["ts"])]
    assert values == sorted(values)


def test_a_gap_without_history_between_registers_is_spread_evenly(alice: Any, mongo: Any) -> None:
    meter = alice.meter.pk
    documents = _with_registers(day_readings(meter, kwh=0.1))
    insert_readings(documents[:8] + documents[40:])  # 02:00-10:00 missing, no earlier history: no profile
    run(meter)
    estimates = store.estimates_for_meter(meter, local(DAY), local(NEXT))
    assert len(estimates) == 32
    assert {e["energy_import_kwh"] for e in estimates} == {0.1}
    assert {e["method"] for e in estimates} == {"register"}


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=1, max_size=96),
    target=st.floats(min_value=0, max_value=500, allow_nan=False),
)
def test_register_fit_keeps_the_shape_and_sums_to_the_register_delta(values: list[float], target: float) -> None:
    fitted = register_fit(values, target)
    assert len(fitted) == len(values)
    assert round(math.fsum(fitted), 6) == round(target, 6)
    assert all(value >= 0 for value in fitted)
    if math.fsum(values) > 0 and target > 1:
        # Proportions are kept (up to the rounding of each value to the Wh/1000).
        total = math.fsum(values)
        assert all(abs(f - v / total * target) <= 1e-5 * len(values) for f, v in zip(fitted, values, strict=True))
