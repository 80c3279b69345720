"""The operator's map at a utility's size: premises counted per grid cell, the ones in trouble drawn one by one."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from mdms.core.localtime import local_today
from mdms.core.models import Meter, Premise
from mdms.core.testing import make_grid
from portal.views import operator_charts, operator_data


def _fleet(count: int) -> list[Meter]:
    """count premises with an active meter each, on a 0.01-degree lattice around Lyon (away from cell edges)."""
    feeder = make_grid("map")
    premises = Premise.objects.bulk_create(
        [
            Premise(
                feeder=feeder,
                address=f"{n} Map Street",
                latitude=Decimal("45.7003") + Decimal(n % 7) * Decimal("0.0131"),
                longitude=Decimal("4.8003") + Decimal(n // 7) * Decimal("0.0173"),
            )
            for n in range(count)
        ]
    )
    return Meter.objects.bulk_create(
        [Meter(serial=f"MAP{n:05d}", premise=p, status=Meter.Status.ACTIVE) for n, p in enumerate(premises)]
    )


@pytest.fixture
def grid_cache() -> Iterator[None]:
    """Today's cached grid figures, emptied before and after: a dashboard reads them whenever they are
    there (only a large fleet's are stored), so a test that makes its fleet "large" must not leave them."""
    for day in (local_today(), dt.date(2026, 12, 2)):
        operator_data.cache.delete(operator_data.GRID_CACHE_KEY.format(day=day.isoformat()))
    yield
    for day in (local_today(), dt.date(2026, 12, 2)):
        operator_data.cache.delete(operator_data.GRID_CACHE_KEY.format(day=day.isoformat()))


def _cell_of(premise: Premise, cell: Decimal) -> tuple[int, int]:
    return math.floor(premise.latitude / cell), math.floor(premise.longitude / cell)


@pytest.mark.django_db
def test_map_cells_count_every_normal_premise_once_and_troubled_ones_stay_points(mongo: Any) -> None:
    meters = _fleet(40)
    # A second meter on one premise (still one premise), and a meter that no longer counts.
    Meter.objects.create(serial="MAPTWIN", premise=meters[0].premise, status=Meter.Status.ACTIVE)
    Meter.objects.create(serial="MAPGONE", premise=meters[1].premise, status=Meter.Status.REMOVED)
    Meter.objects.filter(pk=meters[2].pk).update(relay_state=Meter.Relay.DISCONNECTED)
    silent = [{"meter": meters[3].pk}]
    anomalies = [
        {"meter_id": meters[4].pk, "severity": "critical", "count": 2},
        {"meter_id": meters[5].pk, "severity": "info", "count": 9},  # advisory: does not colour a premise
        {"meter_id": meters[0].pk, "severity": "warning", "count": 1},
    ]

    found = operator_data.premise_map(silent_rows=silent, anomaly_counts=anomalies, points_max=5)

    assert found.cell_deg is not None
    states = {p.premise_pk: p.state for p in found.points}
    assert states == {
        meters[2].premise_id: "disconnected",
        meters[3].premise_id: "silent",
        meters[4].premise_id: "anomaly",
        meters[0].premise_id: "anomaly",
    }
    assert sum(c.premises for c in found.cells) + len(found.points) == 40
    assert found.counts == {"out": 0, "silent": 1, "disconnected": 1, "anomaly": 2, "normal": 36}
    # Each cell holds exactly the normal premises whose coordinates fall in it.
    flagged = set(states)
    expected: dict[tuple[int, int], int] = {}
    for meter in meters:
        if meter.premise_id not in flagged:
            assert meter.premise is not None
            key = _cell_of(meter.premise, found.cell_deg)
            expected[key] = expected.get(key, 0) + 1
    assert sorted(c.premises for c in found.cells) == sorted(expected.values())
    assert all(c.state == "normal" for c in found.cells)


@pytest.mark.django_db
def test_a_state_with_too_many_premises_is_counted_per_cell_too(mongo: Any) -> None:
    meters = _fleet(30)
    silent = [{"meter": m.pk} for m in meters[:12]]

    found = operator_data.premise_map(silent_rows=silent, anomaly_counts=[], points_max=10)

    assert found.points == []
    assert sum(c.premises for c in found.cells if c.state == "silent") == 12
    assert sum(c.premises for c in found.cells if c.state == "normal") == 18
    assert found.counts["silent"] == 12 and found.counts["normal"] == 18


@pytest.mark.django_db
def test_a_small_fleet_keeps_every_premise_as_a_point(mongo: Any) -> None:
    meters = _fleet(8)

    found = operator_data.premise_map(silent_rows=[{"meter": meters[0].pk}], anomaly_counts=[])

    assert found.cells == [] and found.cell_deg is None
    assert len(found.points) == 8
    assert {p.premise_pk for p in found.points} == {m.premise_id for m in meters}
    assert found.counts["silent"] == 1 and found.counts["normal"] == 7


@pytest.mark.django_db
def test_the_map_figure_draws_one_mark_per_cell_with_its_count(mongo: Any) -> None:
    meters = _fleet(40)
    found = operator_data.premise_map(silent_rows=[{"meter": meters[0].pk}], anomaly_counts=[], points_max=5)

    figure = operator_charts.map_figure(found.points, found.cells, found.counts)

    traces = {t["meta"]: t for t in figure["data"]}
    assert sum(traces["normal-cells"]["customdata"]) == 39
    assert len(traces["normal-cells"]["x"]) == len(found.cells)
    assert traces["normal"]["x"] == [] and traces["normal"]["name"] == "Normal (39)"
    assert len(traces["silent"]["x"]) == 1


@pytest.mark.django_db
def test_the_dashboard_draws_cells_for_a_large_fleet(olivia: Any, mongo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fleet(40)
    monkeypatch.setattr(operator_data, "MAP_POINTS_MAX", 10)
    client = Client()
    client.force_login(olivia)

    response = client.get("/operator/")

    assert response.status_code == 200
    assert response.context["state_counts"]["normal"] == 40
    cells = next(t for t in response.context["figures"]["map"]["data"] if t["meta"] == "normal-cells")
    assert sum(cells["customdata"]) == 40
    assert "faint discs count the premises" in response.content.decode()


@pytest.mark.django_db
def test_on_a_large_fleet_the_grid_sums_come_from_the_cache_until_refreshed(
    mongo: Any, monkeypatch: pytest.MonkeyPatch, grid_cache: None
) -> None:
    _fleet(3)
    monkeypatch.setattr(operator_data, "GRID_CACHE_MIN_METERS", 1)
    today = dt.date(2026, 12, 2)

    first = operator_data.grid_view(today=today)
    again = operator_data.grid_view(today=today)
    fresh = operator_data.grid_view(today=today, refresh=True)

    assert again.computed_at == first.computed_at
    assert fresh.computed_at > first.computed_at
    assert operator_data.grid_view(today=today).computed_at == fresh.computed_at
    assert sum(row["meters"] for row in fresh.regions.values()) == 3


@pytest.mark.django_db
def test_the_grid_refresh_job_fills_the_cache_only_on_a_large_fleet(
    mongo: Any, monkeypatch: pytest.MonkeyPatch, grid_cache: None
) -> None:
    from portal.tasks import grid_refresh

    _fleet(3)
    key = operator_data.GRID_CACHE_KEY.format(day=local_today().isoformat())
    assert grid_refresh() is False
    assert operator_data.cache.get(key) is None

    monkeypatch.setattr(operator_data, "GRID_CACHE_MIN_METERS", 3)
    assert grid_refresh() is True
    cached = operator_data.cache.get(key)
    assert isinstance(cached, operator_data.GridView) and sum(r["meters"] for r in cached.regions.values()) == 3
