"""`manage.py reprocess`: VEE, rollups, baselines and detection over a range of history (issue 14 item 6)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import VeeException
from billing.tests.bills_helpers import interval_ends, local
from mdms.core.timeseries import ANOMALIES, collection
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries import rollups as rollup_store

pytestmark = pytest.mark.django_db
FIRST, END = dt.date(2026, 10, 1), dt.date(2026, 11, 11)


def _history(meter_pk: int) -> list[dict[str, Any]]:
    gap = (local(dt.date(2026, 11, 9), 10), local(dt.date(2026, 11, 9), 11))
    step = (local(dt.date(2026, 11, 10), 9), local(dt.date(2026, 11, 10), 10))
    received = dt.datetime.now(tz=dt.UTC)
    return [
        stored.reading_document(
            meter_pk=meter_pk,
            ts=ts,
            received_at=received,
            values={"energy_import_kwh": 0.2, "voltage_v": 246.0 if step[0] < ts <= step[1] else 230.0},
            interval_s=900,
        )
        for ts in interval_ends(FIRST, END)
        if not gap[0] < ts <= gap[1]
    ]


def test_reprocess_estimates_raises_exceptions_rolls_up_and_judges_a_range(alice: Any, mongo: Any) -> None:
    stored.insert_readings(_history(alice.meter.pk))  # loaded behind the pipeline's back: nothing ran
    out, err = io.StringIO(), io.StringIO()
    call_command("reprocess", "--from", "2026-10-01", "--to", "2026-11-10", "--meter", alice.meter.serial,
                 stdout=out, stderr=err)  # fmt: skip
    assert "1 meters, 2026-10-01 to 2026-11-10: 41 meter-days, 4 intervals estimated" in out.getvalue()
    assert "vee" in err.getvalue() and "detection" in err.getvalue()  # progress bars
    assert len(rollup_store.daily_documents([alice.meter.pk], FIRST, END, fields=("intervals",))) == 41
    assert VeeException.objects.filter(meter=alice.meter, kind=VeeException.Kind.MISSING_INTERVALS).count() == 1
    # The in-band voltage step of 10 November (7 % up: over the 5 % statistical floor), found against the
    # weeks of history before it.
    flagged = collection(ANOMALIES).count_documents({"meter_id": alice.meter.pk, "rule": "statistical"})
    assert flagged == 4
    # Idempotent: again, nothing new.
    again = io.StringIO()
    call_command("reprocess", "--from", "2026-10-01", "--to", "2026-11-10", stdout=again, stderr=io.StringIO())
    assert "0 new anomalies" in again.getvalue()
    assert collection(ANOMALIES).count_documents({"meter_id": alice.meter.pk, "rule": "statistical"}) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-10", "--to", "2026-11-01"], "after --to"),
        (["--from", "2026-11-01", "--to", "2099-01-01"], "in the future"),
        (["--from", "yesterday", "--to", "2026-11-01"], "must be a date"),
        (["--from", "2026-11-01", "--to", "2026-11-02", "--meter", "NOPE"], "no meter NOPE"),
    ],
)
def test_reprocess_names_what_is_wrong_with_its_arguments(db: None, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("reprocess", *args, stdout=io.StringIO(), stderr=io.StringIO())
