"""Export, verify, tier, read back: against the real MongoDB and PostgreSQL, in a temporary lake."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow.parquet as pq
import pytest

from billing.rollups import rollups_recompute
from lake.errors import LakeError
from lake.export import lake_day_export, read_manifest
from lake.models import LakeDay
from lake.paths import DATA_FILE, MANIFEST_FILE, lake
from lake.restore import lake_restore
from lake.tiering import lake_tier
from lake.verify import lake_day_verify
from mdms.core.localtime import day_bounds
from mdms.core.timeseries import archive
from mdms.core.timeseries.readings import (
    count_stored_readings,
    events_for_meter,
    insert_readings,
    readings_for_meter,
)
from mdms.core.timeseries.rollups import daily_documents

from .conftest import day_readings, store_day, store_events

DAY = dt.date(2025, 3, 10)
NEXT = DAY + dt.timedelta(days=1)
AFTER = NEXT + dt.timedelta(days=1)


def _rollup_totals(meter_pks: list[int], first: dt.date, end: dt.date) -> list[tuple[Any, ...]]:
    fields = ("meter", "day", "total_import_kwh", "total_export_kwh", "intervals", "import_kwh")
    return [tuple(doc[f] for f in fields) for doc in daily_documents(meter_pks, first, end)]


def test_export_verify_tier_then_read_back_gives_equal_data(alice: Any, bob: Any, mongo: Any) -> None:
    a, b = alice.meter.pk, bob.meter.pk
    store_day(a, DAY, kwh=lambda k: 0.1 + k / 1000)
    store_day(a, NEXT)
    store_day(b, DAY, kwh=lambda k: 0.05 * (k % 7))
    # A later copy of alice's first interval, with another value: reads keep the first received.
    insert_readings(day_readings(a, DAY, kwh=lambda k: 9.9, received_s=10_000)[:1])
    before = {pk: readings_for_meter(pk, None, None) for pk in (a, b)}
    rollups_recompute(meter_pks=[a, b], first_day=DAY, end_day=AFTER)
    rollups_before = _rollup_totals([a, b], DAY, AFTER)

    exported = lake_day_export(kind="readings", day=DAY)
    expected_import = math.fsum([0.1 + k / 1000 for k in range(96)] + [0.05 * (k % 7) for k in range(96)])
    assert (exported.totals.rows, exported.totals.meters) == (192, 2)  # the duplicate is not counted twice
    assert exported.totals.energy_import_kwh == expected_import
    assert exported.totals.min_ts == day_bounds(DAY)[0] + dt.timedelta(minutes=15)
    assert exported.totals.max_ts == day_bounds(DAY)[1]
    assert lake_day_verify(kind="readings", day=DAY).ok
    assert LakeDay.objects.get(day=DAY, kind="readings").status == LakeDay.Status.VERIFIED

    tiered = lake_tier(cutoff=NEXT)
    assert tiered.tiered == [("readings", DAY)] and not tiered.refused
    row = LakeDay.objects.get(day=DAY, kind="readings")
    assert row.status == LakeDay.Status.TIERED and row.tiered_rows == 193  # every stored copy went
    assert archive.meters_in_range("readings", *day_bounds(DAY)) == []
    end_of_day = day_bounds(DAY)[1]
    # The next day is untouched, although MongoDB's buckets straddled midnight.
    assert readings_for_meter(a, None, None) == [r for r in before[a] if r["ts"] > end_of_day]
    assert readings_for_meter(b, None, None) == []
    assert _rollup_totals([a, b], DAY, AFTER) == rollups_before  # rollups stay

    restored = lake_restore(first_day=DAY, end_day=NEXT)
    assert [(r.kind, r.day, r.inserted) for r in restored] == [("readings", DAY, 192)]
    assert {pk: readings_for_meter(pk, None, None) for pk in (a, b)} == before
    assert count_stored_readings([a]) == 96 * 2  # one copy per interval: the duplicate is not back
    assert LakeDay.objects.get(day=DAY, kind="readings").status == LakeDay.Status.RESTORED

    # Restoring again stores nothing twice.
    LakeDay.objects.filter(day=DAY, kind="readings").update(status=LakeDay.Status.TIERED)
    assert [r.inserted for r in lake_restore(first_day=DAY, end_day=NEXT)] == [0]
    assert count_stored_readings([a, b]) == 96 * 3


def test_events_are_exported_tiered_and_restored(alice: Any, mongo: Any) -> None:
    a = alice.meter.pk
    store_events(a, DAY)
    store_events(a, NEXT, hours=(10,))
    # The same last gasp again, received later: one event per (meter, ts, type).
    copy = store_events(a, DAY, hours=(3,))
    assert copy
    before = events_for_meter(a, None, None)

    exported = lake_day_export(kind="events", day=DAY)
    assert (exported.totals.rows, exported.totals.meters) == (2, 1)
    assert lake_tier(cutoff=NEXT).tiered == [("events", DAY)]
    assert events_for_meter(a, None, None) == [e for e in before if e["ts"] >= day_bounds(DAY)[1]]
    lake_restore(first_day=DAY, end_day=NEXT, kinds=["events"])
    assert events_for_meter(a, None, None) == before


def test_re_export_gives_the_same_partition_and_a_changed_day_replaces_it(alice: Any, bob: Any, mongo: Any) -> None:
    a, b = alice.meter.pk, bob.meter.pk
    store_day(a, DAY)
    store_day(b, DAY)
    where = lake()
    lake_day_export(kind="readings", day=DAY)
    first_manifest = read_manifest(where, "readings", DAY)
    first_table = pq.read_table(where.data_path("readings", DAY))
    lake_day_export(kind="readings", day=DAY)
    second_manifest = read_manifest(where, "readings", DAY)
    assert first_manifest and second_manifest
    assert {k: v for k, v in first_manifest.items() if k != "exported_at"} == {
        k: v for k, v in second_manifest.items() if k != "exported_at"
    }
    assert pq.read_table(where.data_path("readings", DAY)).equals(first_table)
    assert LakeDay.objects.filter(day=DAY, kind="readings").count() == 1

    # MongoDB changes: bob's rows go, alice's day is stored again with other values.
    archive.delete_range("readings", *day_bounds(DAY))
    store_day(a, DAY, kwh=lambda k: 1.0)
    where.fs.pipe_file(f"{where.partition('readings', DAY)}/stray.parquet", b"not ours")
    lake_day_export(kind="readings", day=DAY)
    table = pq.read_table(where.data_path("readings", DAY))
    assert set(table.column("meter_pk").to_pylist()) == {a}
    assert table.num_rows == 96 and set(table.column("energy_import_kwh").to_pylist()) == {1.0}
    names = sorted(p.rsplit("/", 1)[-1] for p in where.fs.ls(where.partition("readings", DAY), detail=False))
    assert names == [MANIFEST_FILE, DATA_FILE]
    assert not where.fs.glob(where.staging_path("*"))


def test_a_tampered_file_blocks_tiering(alice: Any, mongo: Any) -> None:
    a = alice.meter.pk
    store_day(a, DAY)
    lake_day_export(kind="readings", day=DAY)
    where = lake()
    table = pq.read_table(where.data_path("readings", DAY))
    values = table.column("energy_import_kwh").to_pylist()
    values[5] += 1.0
    index = table.schema.get_field_index("energy_import_kwh")
    tampered = table.set_column(index, table.schema.field(index), [values])
    pq.write_table(tampered, where.data_path("readings", DAY))

    result = lake_tier(cutoff=NEXT)
    assert result.tiered == [] and result.refused[0][:2] == ("readings", DAY)
    assert "does not match its manifest" in result.refused[0][2]
    assert count_stored_readings([a]) == 96
    row = LakeDay.objects.get(day=DAY, kind="readings")
    assert row.status == LakeDay.Status.EXPORTED and "energy_import_kwh" in row.error


def test_mongodb_changed_after_export_blocks_tiering(alice: Any, bob: Any, mongo: Any) -> None:
    store_day(alice.meter.pk, DAY)
    lake_day_export(kind="readings", day=DAY)
    store_day(bob.meter.pk, DAY)  # late data: MongoDB now holds more than the lake

    result = lake_tier(cutoff=NEXT)
    assert result.tiered == [] and "MongoDB and the lake differ" in result.refused[0][2]
    assert count_stored_readings([alice.meter.pk, bob.meter.pk]) == 192
    assert "rows 96 vs 192" in LakeDay.objects.get(day=DAY, kind="readings").error


def test_a_tiered_day_is_never_exported_again_from_an_empty_mongodb(alice: Any, mongo: Any) -> None:
    store_day(alice.meter.pk, DAY)
    lake_day_export(kind="readings", day=DAY)
    lake_tier(cutoff=NEXT)
    with pytest.raises(LakeError, match="only copy"):
        lake_day_export(kind="readings", day=DAY)
    assert pq.read_table(lake().data_path("readings", DAY)).num_rows == 96


@pytest.mark.parametrize(("day", "intervals"), [(dt.date(2025, 3, 30), 92), (dt.date(2025, 10, 26), 100)])
def test_a_dst_day_exports_its_own_local_rows(alice: Any, mongo: Any, day: dt.date, intervals: int) -> None:
    a = alice.meter.pk
    for offset in (-1, 0, 1):
        store_day(a, day + dt.timedelta(days=offset))
    exported = lake_day_export(kind="readings", day=day)
    start, end = day_bounds(day)
    assert exported.totals.rows == intervals
    assert (exported.totals.min_ts, exported.totals.max_ts) == (start + dt.timedelta(minutes=15), end)
    table = pq.read_table(lake().data_path("readings", day))
    assert set(table.column("local_date").to_pylist()) == {day}
    lake_tier(cutoff=day + dt.timedelta(days=1))
    remaining = readings_for_meter(a, None, None)
    assert len(remaining) == 96 + 96 and all(r["ts"] <= start or r["ts"] > end for r in remaining)
