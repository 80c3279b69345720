"""The nightly job, the commands, DuckDB queries, a remote file system, and billing's guard."""

from __future__ import annotations

import datetime as dt
import io
import math
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.rollups import rollups_recompute
from lake import schema
from lake.export import lake_day_export
from lake.models import LakeDay
from lake.paths import lake
from lake.query import DEFAULT_QUERY, run_sql
from lake.services import lake_nightly
from lake.tiering import lake_tier
from lake.verify import lake_day_verify
from mdms.core.localtime import local_zone
from mdms.core.testing import make_consumer, make_grid
from mdms.core.timeseries.readings import count_stored_readings, readings_for_meter
from mdms.core.timeseries.rollups import daily_documents

from .conftest import day_readings, store_day

DAY = dt.date(2025, 3, 10)
NEXT = DAY + dt.timedelta(days=1)


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=local_zone())


def test_the_nightly_job_catches_up_missed_days_and_is_harmless_twice(
    alice: Any, mongo: Any, lake_settings: Any
) -> None:
    for offset in range(4):
        store_day(alice.meter.pk, DAY + dt.timedelta(days=offset))
    today = DAY + dt.timedelta(days=4)

    first = lake_nightly(now=_noon(today))
    assert [(r.kind, r.day) for r in first.exported] == [("readings", DAY + dt.timedelta(days=n)) for n in range(4)]
    assert first.tier is not None and first.tier.tiered == []  # all younger than 400 days
    again = lake_nightly(now=_noon(today))
    assert again.exported == [] and LakeDay.objects.count() == 4

    # A day lost from the lake's record (the job was down, or the row removed) is exported again.
    LakeDay.objects.filter(day=DAY + dt.timedelta(days=1)).delete()
    assert [r.day for r in lake_nightly(now=_noon(today)).exported] == [DAY + dt.timedelta(days=1)]

    # The next night, with a retention of 2 days: the two oldest days leave MongoDB, once.
    lake_settings.LAKE_RAW_RETENTION_DAYS = 2
    tier = lake_nightly(now=_noon(today)).tier
    assert tier is not None and tier.tiered == [("readings", DAY), ("readings", NEXT)]
    assert count_stored_readings([alice.meter.pk]) == 96 * 2
    tier = lake_nightly(now=_noon(today)).tier
    assert tier is not None and tier.tiered == [] and count_stored_readings([alice.meter.pk]) == 96 * 2

    lake_settings.LAKE_RAW_RETENTION_DAYS = 0  # tiering off
    assert lake_nightly(now=_noon(today + dt.timedelta(days=30))).tier.tiered == []  # type: ignore[union-attr]


def test_a_remote_file_system_holds_the_same_lake(alice: Any, mongo: Any, lake_settings: Any) -> None:
    """fsspec's memory:// stands for an S3 bucket: the same code path as s3fs (no local paths)."""
    lake_settings.LAKE_URL = f"memory://lake-{uuid.uuid4().hex}"
    store_day(alice.meter.pk, DAY)
    exported = lake_day_export(kind="readings", day=DAY)
    assert exported.path.startswith("memory://lake-") and exported.path.endswith("/dt=2025-03-10/part-0.parquet")
    where = lake()
    assert where.fs.exists(where.data_path("readings", DAY))
    assert lake_day_verify(kind="readings", day=DAY).ok
    result = run_sql(DEFAULT_QUERY.read_text(), where)
    assert [row[:4] for row in result.rows] == [(DAY, "test", 1, 96)]
    assert lake_tier(cutoff=NEXT).tiered == [("readings", DAY)]
    call_command("lake_restore", "--from", str(DAY), "--to", str(NEXT), stdout=io.StringIO(), stderr=io.StringIO())
    assert len(readings_for_meter(alice.meter.pk, None, None)) == 96
    fsspec.filesystem("memory").rm(where.root, recursive=True)


def test_lake_query_gives_consumption_per_region_per_day(alice: Any, bob: Any, mongo: Any) -> None:
    carol = make_consumer("carol", feeder=make_grid("north"))
    store_day(alice.meter.pk, DAY, kwh=lambda k: 0.25)
    store_day(bob.meter.pk, DAY, kwh=lambda k: 0.01 * k)
    store_day(carol.meter.pk, DAY, kwh=lambda k: 0.1)
    store_day(alice.meter.pk, NEXT, kwh=lambda k: 0.5)
    for day in (DAY, NEXT):
        lake_day_export(kind="readings", day=day)

    result = run_sql(DEFAULT_QUERY.read_text())
    assert result.columns == ["local_day", "region", "meters", "readings", "import_kwh", "export_kwh"]
    exports = math.fsum(d["energy_export_kwh"] for d in day_readings(alice.meter.pk, DAY))
    expected = [
        (DAY, "north", 1, 96, round(0.1 * 96, 3), round(exports, 3)),
        (DAY, "test", 2, 192, round(0.25 * 96 + math.fsum(0.01 * k for k in range(96)), 3), round(2 * exports, 3)),
        (NEXT, "test", 1, 96, round(0.5 * 96, 3), round(exports, 3)),
    ]
    assert [(r[0], r[1], r[2], r[3], pytest.approx(r[4]), pytest.approx(r[5])) for r in result.rows] == expected

    out = io.StringIO()
    call_command("lake_query", stdout=out)
    text = out.getvalue()
    assert "local_day" in text and "north" in text and "(3 row(s)" in text


def test_lake_query_on_an_empty_lake_says_how_to_fill_it(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"is empty.*lake_export --pending"):
        call_command("lake_query", stdout=io.StringIO())
    other = tmp_path / "other.sql"
    with pytest.raises(CommandError, match="no SQL file"):
        call_command("lake_query", "--sql", str(other), stdout=io.StringIO())


def test_commands_show_progress_and_refuse_unfinished_days(alice: Any, mongo: Any) -> None:
    store_day(alice.meter.pk, DAY)
    store_day(alice.meter.pk, NEXT)
    out, err = io.StringIO(), io.StringIO()
    call_command("lake_export", "--from", str(DAY), "--to", str(NEXT + dt.timedelta(days=1)), stdout=out, stderr=err)
    assert "exported 4 day-kind partition(s), 192 row(s)" in out.getvalue()
    assert "exporting to the lake" in err.getvalue() and "4/4" in err.getvalue()

    out, err = io.StringIO(), io.StringIO()
    call_command("lake_tier", "--before", str(NEXT), stdout=out, stderr=err)
    assert "tiered 2 day-kind(s)" in out.getvalue() and "verifying and tiering" in err.getvalue()

    out, err = io.StringIO(), io.StringIO()
    call_command("lake_restore", "--from", str(DAY), "--to", str(NEXT), stdout=out, stderr=err)
    assert "restored 2 day-kind(s), 96 row(s)" in out.getvalue() and "2/2" in err.getvalue()  # readings, events

    today = dt.datetime.now(dt.UTC).astimezone(local_zone()).date()
    with pytest.raises(CommandError, match="not over yet"):
        call_command("lake_export", "--day", str(today), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="say which days"):
        call_command("lake_export", stdout=io.StringIO(), stderr=io.StringIO())


def _rollups(meter_pk: int) -> list[tuple[Any, ...]]:
    return [
        (d["day"], d["total_import_kwh"], d["intervals"], d["import_kwh"])
        for d in daily_documents([meter_pk], DAY, NEXT + dt.timedelta(days=1))
    ]


def test_recomputing_a_tiered_day_reads_it_back_instead_of_zeroing_it(alice: Any, mongo: Any) -> None:
    a = alice.meter.pk
    store_day(a, DAY, kwh=lambda k: 0.2)
    store_day(a, NEXT)
    rollups_recompute(meter_pks=[a], first_day=DAY, end_day=NEXT + dt.timedelta(days=1))
    before = _rollups(a)
    assert before[0][1] == pytest.approx(0.2 * 96)
    lake_day_export(kind="readings", day=DAY)
    lake_tier(cutoff=NEXT)
    assert count_stored_readings([a]) == 96

    # Late data or a VEE run makes billing recompute the tiered day: its raw readings come back first.
    rollups_recompute(meter_pks=[a], first_day=DAY, end_day=NEXT)
    assert _rollups(a) == before
    assert LakeDay.objects.get(day=DAY, kind="readings").status == LakeDay.Status.RESTORED


def test_rebuild_rollups_over_an_archived_range_restores_it_first(alice: Any, mongo: Any) -> None:
    a = alice.meter.pk
    store_day(a, DAY, kwh=lambda k: 0.3)
    rollups_recompute(meter_pks=[a], first_day=DAY, end_day=NEXT)
    before = _rollups(a)
    lake_day_export(kind="readings", day=DAY)
    lake_tier(cutoff=NEXT)

    out = io.StringIO()
    call_command("rebuild_rollups", "--from", str(DAY), "--to", str(NEXT), stdout=out, stderr=io.StringIO())
    assert "restored 1 archived day(s) from the data lake" in out.getvalue()
    assert _rollups(a) == before and count_stored_readings([a]) == 96


def test_docs_describe_every_column() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "lake.md").read_text()
    for columns in schema.COLUMNS.values():
        for name, _type, _unit in columns:
            assert f"`{name}`" in text, f"docs/lake.md does not describe the column {name}"


def test_the_operator_sees_the_lake_on_the_ingest_page(client: Any, olivia: Any, alice: Any, mongo: Any) -> None:
    from django.urls import reverse

    store_day(alice.meter.pk, DAY)
    lake_day_export(kind="readings", day=DAY)
    store_day(alice.meter.pk, NEXT)
    lake_day_export(kind="readings", day=NEXT)
    lake_day_verify(kind="readings", day=DAY)
    store_day(alice.meter.pk, NEXT, kwh=lambda k: 0.1, received_s=-10)  # an earlier copy now wins: NEXT differs
    lake_day_verify(kind="readings", day=NEXT)

    client.force_login(olivia)
    page = client.get(reverse("operator_ingest")).content.decode()
    assert "Data lake" in page and "11 Mar 2025" in page
    assert 'id="lake-verified">1<' in page and 'id="lake-errors">1<' in page
    assert "MongoDB and the lake differ" in page
