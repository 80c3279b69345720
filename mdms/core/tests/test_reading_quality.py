"""The quality code list, how MongoDB and Python judge a stored interval alike, and data stored before the codes."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing import selectors as usage
from billing.rollups import rollups_rebuild
from mdms.core import reading_quality as rq
from mdms.core.localtime import local_midnight
from mdms.core.testing import make_consumer
from mdms.core.timeseries import ESTIMATES, INTERVAL_EDITS, ROLLUPS_DAILY, collection, rollups
from mdms.core.timeseries import readings as stored

DAY = dt.date(2026, 11, 2)
STEP = dt.timedelta(minutes=15)


def test_every_code_has_a_number_of_esp_quality_of_reading() -> None:
    # usage.xsd's QualityOfReading enumeration.
    allowed = {0, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
    assert {quality.espi for quality in rq.QUALITIES} <= allowed
    assert len(set(rq.CODES)) == len(rq.CODES)
    assert {
        "estimated_interpolation",
        "estimated_profile",
        "estimated_reference_day",
        "estimated_datahub",
        "estimated",
    } == rq.ESTIMATED_CODES


def test_a_filter_takes_codes_and_families_and_names_a_bad_one() -> None:
    assert rq.parse_filter("estimated") == rq.ESTIMATED_CODES
    assert rq.parse_filter("valid, edited") == {"valid", "edited"}
    with pytest.raises(ValueError, match=r"'guess'.*estimated_profile"):
        rq.parse_filter("valid,guess")


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("linear", "estimated_interpolation"),
        ("linear+register", "estimated_interpolation"),
        ("register", "estimated_interpolation"),
        ("profile", "estimated_profile"),
        ("profile+register", "estimated_profile"),
        ("reference_day", "estimated_reference_day"),
    ],
)
@pytest.mark.django_db
def test_an_estimate_stored_before_the_codes_reads_as_its_method_says(mongo: Any, method: str, code: str) -> None:
    lee = make_consumer("lee")
    ts = local_midnight(DAY) + STEP
    # As an estimate was stored before estimates carried their code: no `quality` field.
    document = {"meter": lee.meter.pk, "ts": ts, "energy_import_kwh": 0.3, "energy_export_kwh": 0.0}
    collection(ESTIMATES).insert_one({**document, "interval_s": 900, "method": method, "received_at": ts})

    (row,) = rollups.effective_intervals(lee.meter.pk, ts - STEP, ts)

    assert row["quality"] == code == rq.estimate_quality(method).code


@pytest.mark.django_db
def test_readings_edits_and_rollups_stored_before_the_codes_read_as_before(mongo: Any) -> None:
    lee = make_consumer("lee")
    first = local_midnight(DAY)
    # Readings as the ingest wrote them before (no origin, no quality), one edit without its fields.
    stored.insert_readings(
        [
            {"meter": lee.meter.pk, "ts": first + STEP * k, "received_at": first, "energy_import_kwh": 0.25,
             "interval_s": 900}
            for k in range(1, 97)
        ]
    )  # fmt: skip
    collection(INTERVAL_EDITS).insert_one(
        {"meter": lee.meter.pk, "ts": first + STEP, "energy_import_kwh": 0.5, "interval_s": 900, "edit_id": 1,
         "received_at": first}
    )  # fmt: skip
    rollups_rebuild(first_day=DAY, end_day=DAY + dt.timedelta(days=1), meter_pks=[lee.meter.pk])
    # A rollup computed before the codes existed has no counts per code.
    collection(ROLLUPS_DAILY).update_many({"meter": lee.meter.pk}, {"$unset": {"quality_intervals": ""}})

    intervals = usage.interval_usage(meter_pk=lee.meter.pk, start=first, end=local_midnight(DAY + dt.timedelta(days=1)))
    (day,) = usage.daily_usage(meter_pk=lee.meter.pk, start=DAY, end=DAY + dt.timedelta(days=1))
    totals = usage.billing_totals(meter_pks=[lee.meter.pk], start=DAY, end=DAY + dt.timedelta(days=1))[lee.meter.pk]

    assert Counter((i.quality, i.source) for i in intervals) == {("valid", "mqtt"): 95, ("edited", "manual"): 1}
    assert day.quality_intervals == {"valid": 95, "edited": 1}
    assert totals.intervals_by_quality == {"valid": 95, "edited": 1}


_names = itertools.count()
KINDS = ["mqtt", "file", "hub_estimate", "linear", "profile", "reference_day", "missing"]


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=96, max_size=96), edits=st.sets(st.integers(0, 95), max_size=5))
@pytest.mark.django_db
def test_the_rollup_counts_per_code_are_the_codes_of_the_intervals(
    mongo: Any, kinds: list[str], edits: set[int]
) -> None:
    for name in (ESTIMATES, INTERVAL_EDITS, ROLLUPS_DAILY, "readings"):
        collection(name).delete_many({})
    lee = make_consumer(f"lee{next(_names)}")  # examples share the test's transaction
    first = local_midnight(DAY)
    readings, estimates = [], []
    for k, kind in enumerate(kinds):
        ts = first + STEP * (k + 1)
        if kind in ("mqtt", "file", "hub_estimate"):
            readings.append(
                stored.reading_document(
                    meter_pk=lee.meter.pk,
                    ts=ts,
                    received_at=first,
                    values={"energy_import_kwh": 0.1 * (k % 7)},
                    interval_s=900,
                    origin="datahub" if kind == "hub_estimate" else kind,
                    quality=rq.ESTIMATED_DATAHUB.code if kind == "hub_estimate" else None,
                )
            )
        elif kind != "missing":
            estimates.append({"meter": lee.meter.pk, "ts": ts, "energy_import_kwh": 0.2, "energy_export_kwh": 0.0,
                              "interval_s": 900, "method": kind})  # fmt: skip
    stored.insert_readings(readings)
    rollups.upsert_estimates(estimates)
    for k in edits:
        rollups.set_interval_edit(
            meter_pk=lee.meter.pk, ts=first + STEP * (k + 1), import_kwh=0.4, export_kwh=None, interval_s=900, edit_id=k
        )
    rollups_rebuild(first_day=DAY, end_day=DAY + dt.timedelta(days=1), meter_pks=[lee.meter.pk])

    intervals = usage.interval_usage(meter_pk=lee.meter.pk, start=first, end=local_midnight(DAY + dt.timedelta(days=1)))
    days = usage.daily_usage(meter_pk=lee.meter.pk, start=DAY, end=DAY + dt.timedelta(days=1))

    assert days[0].quality_intervals == dict(Counter(i.quality for i in intervals))
    estimated = sum(i.import_kwh or 0.0 for i in intervals if i.estimated)
    assert days[0].estimated_import_kwh == pytest.approx(estimated, abs=1e-6)
