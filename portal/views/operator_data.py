"""What the operator dashboard reads: grid sums from the rollups, premise states, ingest health.

Every figure here is an aggregate: energy comes from the daily rollups summed per feeder in
MongoDB (mdms.core.timeseries.grid), counts from PostgreSQL and the Redis counters. Nothing scans
raw readings except the drill-down of one meter.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Avg, Count, DecimalField, F, Max, Min, Q, QuerySet, Value
from django.db.models.functions import Floor

from ingest import selectors as ingest
from mdms.core.localtime import local_midnight, local_zone
from mdms.core.models import Feeder, Meter, Premise, Region
from mdms.core.timeseries import grid
from monitoring import selectors as monitoring
from monitoring.detection import ALERTING

# The hourly view and the utilisation matrix cover this many local days (today included);
# 1,000 meters x 7 days is 7,000 daily rollups, summed in MongoDB in well under a second.
HOURLY_DAYS = 7
# The daily trend covers this many days.
DAILY_DAYS = 30
# Map states, worst first: a premise shows the worst state of its meters.
# A premise whose supply the utility cut (a completed disconnect) shows as such, never as out or silent.
STATES = ("out", "silent", "disconnected", "anomaly", "normal")
STATE_LABELS = {
    "out": "Out (outage)",
    "silent": "Silent",
    "disconnected": "Disconnected (by command)",
    "anomaly": "Anomaly",
    "normal": "Normal",
}
RATE_SAMPLE_KEY = "portal:operator:ingest-rate-sample"


@dataclass
class FeederLoad:
    feeder: Feeder
    now_kw: float | None = None  # average power in the newest hour with data
    now_hour: dt.datetime | None = None
    today_kwh: float = 0.0
    peak_kw: float = 0.0
    peak_at: dt.datetime | None = None
    meters: int = 0


@dataclass
class GridLoad:
    """Energy per feeder and region over the last HOURLY_DAYS days, by hour."""

    feeders: list[FeederLoad]
    regions: list[Region]
    # region pk -> [(hour, kWh)] in time order
    region_hours: dict[int, list[tuple[dt.datetime, float]]] = field(default_factory=dict)
    # region pk -> average kW per local hour of day (24 values, None where no data)
    region_hour_of_day: dict[int, list[float | None]] = field(default_factory=dict)
    # region pk -> (peak kW, when)
    region_peaks: dict[int, tuple[float, dt.datetime | None]] = field(default_factory=dict)
    # region pk -> [(day, kWh)] over DAILY_DAYS
    region_days: dict[int, list[tuple[dt.date, float]]] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        return any(self.region_days.values()) or any(self.region_hours.values())


# Above this many meters the grid sums (every daily rollup of the last DAILY_DAYS days, 3 million
# documents at 100,000 meters) take seconds: the dashboard then shows them up to GRID_CACHE_S old
# (they move by the hour anyway), from the cache, which portal.grid_refresh fills every 4 minutes so
# that no page waits for the sums. Below, every request sums them afresh.
GRID_CACHE_MIN_METERS = 20_000
GRID_CACHE_S = 300
GRID_CACHE_KEY = "portal:operator:grid:{day}"


@dataclass
class GridView:
    load: GridLoad
    regions: dict[int, dict[str, int]]  # region_summary
    computed_at: dt.datetime


def grid_view(*, today: dt.date, refresh: bool = False) -> GridView:
    """grid_load and region_summary for the dashboard, from the cache on a large fleet (see GRID_CACHE_S).

    `refresh` computes them anew and stores them (what a warm-up or a periodic job calls).
    """
    key = GRID_CACHE_KEY.format(day=today.isoformat())
    if not refresh:
        # Only a large fleet's figures are ever stored: found, the fleet was large at most GRID_CACHE_S
        # ago, and the page need not count 100,000 meters to know it.
        found = cache.get(key)
        if isinstance(found, GridView):
            return found
    large = Meter.objects.filter(premise__isnull=False).count() >= GRID_CACHE_MIN_METERS
    view = GridView(load=grid_load(today=today), regions=region_summary(), computed_at=dt.datetime.now(dt.UTC))
    if large:
        cache.set(key, view, timeout=GRID_CACHE_S)
    return view


def grid_view_refresh(*, today: dt.date) -> bool:
    """Compute the grid figures into the cache when the fleet is large enough to cache them (portal.grid_refresh)."""
    if Meter.objects.filter(premise__isnull=False).count() < GRID_CACHE_MIN_METERS:
        return False
    grid_view(today=today, refresh=True)
    return True


def _meter_feeders() -> dict[int, int]:
    rows = Meter.objects.filter(premise__isnull=False).values_list("pk", "premise__feeder_id")
    return dict(rows)


def grid_load(*, today: dt.date) -> GridLoad:
    feeders = list(Feeder.objects.select_related("region").order_by("region__code", "code"))
    by_pk = {f.pk: f for f in feeders}
    regions = list(Region.objects.order_by("code"))
    meter_feeders = _meter_feeders()
    end = local_midnight(today + dt.timedelta(days=1))
    hourly = grid.group_hourly(meter_feeders, local_midnight(today - dt.timedelta(days=HOURLY_DAYS - 1)), end)
    daily = grid.group_daily(meter_feeders, local_midnight(today - dt.timedelta(days=DAILY_DAYS - 1)), end)
    loads = {f.pk: FeederLoad(feeder=f) for f in feeders}
    meters_per_feeder = Counter(meter_feeders.values())
    today_start = local_midnight(today)
    region_hour: dict[int, dict[dt.datetime, float]] = defaultdict(lambda: defaultdict(float))
    for row in hourly:
        feeder = by_pk.get(row["group"])
        if feeder is None or (row["import_kwh"] <= 0 and row["export_kwh"] <= 0):
            continue
        load = loads[feeder.pk]
        kw = row["import_kwh"]  # one hour of energy in kWh is the hour's average power in kW
        if load.now_hour is None or row["hour"] >= load.now_hour:
            load.now_hour, load.now_kw = row["hour"], kw
        if row["hour"] >= today_start:
            load.today_kwh += row["import_kwh"]
        if kw > load.peak_kw:
            load.peak_kw, load.peak_at = kw, row["hour"]
        region_hour[feeder.region_id][row["hour"]] += row["import_kwh"]
    for load in loads.values():
        load.meters = meters_per_feeder.get(load.feeder.pk, 0)
    result = GridLoad(feeders=list(loads.values()), regions=regions)
    zone = local_zone()
    for region in regions:
        hours = sorted(region_hour.get(region.pk, {}).items())
        result.region_hours[region.pk] = hours
        sums, counts = [0.0] * 24, [0] * 24
        for hour, kwh in hours:
            local_hour = hour.astimezone(zone).hour
            sums[local_hour] += kwh
            counts[local_hour] += 1
        result.region_hour_of_day[region.pk] = [s / c if c else None for s, c in zip(sums, counts, strict=True)]
        peak = max(hours, key=lambda item: item[1], default=None)
        result.region_peaks[region.pk] = (peak[1], peak[0]) if peak else (0.0, None)
    region_day: dict[int, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for row in daily:
        feeder = by_pk.get(row["group"])
        if feeder is not None:
            region_day[feeder.region_id][row["day"]] += row["import_kwh"]
    result.region_days = {region.pk: sorted(region_day.get(region.pk, {}).items()) for region in regions}
    return result


@dataclass(frozen=True)
class PremisePoint:
    premise_pk: int
    latitude: float
    longitude: float
    address: str
    feeder: str
    state: str
    serials: tuple[str, ...]


@dataclass(frozen=True)
class _TroubledMeters:
    """The meters out, silent and with alerting anomalies: what colours a premise on the map."""

    out: set[int]
    silent: set[int]
    anomalous: set[int]

    def state(self, pk: int, relay: str) -> str:
        if relay == Meter.Relay.DISCONNECTED:
            return "disconnected"
        if pk in self.out:
            return "out"
        return "silent" if pk in self.silent else "anomaly" if pk in self.anomalous else "normal"


def _troubled_meters(
    *,
    now: dt.datetime | None,
    silent_rows: Sequence[dict[str, Any]] | None,
    anomaly_counts: Sequence[dict[str, Any]] | None,
) -> _TroubledMeters:
    """`silent_rows` and `anomaly_counts` are read here unless the caller, which shows them too, has them."""
    if silent_rows is None:
        silent_rows = monitoring.silent_meters(now=now)
    if anomaly_counts is None:
        anomaly_counts = monitoring.anomaly_counts(group_by="meter_id", now=now)
    return _TroubledMeters(
        out=set(monitoring.meters_out_now().values_list("meter_id", flat=True)),
        silent={row["meter"] for row in silent_rows},
        # Info-only findings (unusual consumption) are advisory: they do not colour a premise.
        anomalous={row["meter_id"] for row in anomaly_counts if row["severity"] in ALERTING},
    )


def premise_states(
    *,
    now: dt.datetime | None = None,
    silent_rows: Sequence[dict[str, Any]] | None = None,
    anomaly_counts: Sequence[dict[str, Any]] | None = None,
) -> list[PremisePoint]:
    """Every premise with coordinates and the worst state of its meters (out, silent, anomaly, normal).

    `silent_rows` (monitoring.silent_meters) and `anomaly_counts` (monitoring.anomaly_counts by
    meter_id) are read here unless the caller, which shows them too, has them already.
    """
    troubled = _troubled_meters(now=now, silent_rows=silent_rows, anomaly_counts=anomaly_counts)
    meters: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for pk, premise_pk, serial, relay in Meter.objects.filter(
        premise__isnull=False, status__in=Meter.ACCEPTING_STATUSES
    ).values_list("pk", "premise_id", "serial", "relay_state"):
        meters[premise_pk].append((troubled.state(pk, relay), serial))
    points = []
    for premise in Premise.objects.select_related("feeder").order_by("pk"):
        found = meters.get(premise.pk)
        if not found:
            continue
        state = min((s for s, _serial in found), key=STATES.index)
        points.append(
            PremisePoint(
                premise_pk=premise.pk,
                latitude=float(premise.latitude),
                longitude=float(premise.longitude),
                address=premise.address,
                feeder=premise.feeder.code,
                state=state,
                serials=tuple(serial for _s, serial in found),
            )
        )
    return points


# Above this many premises the map stops drawing premises one by one: a browser draws 2,000 marks
# at once, but 100,000 take seconds of its main thread and megabytes of page. The premises of a
# state with more than this many are counted per grid cell instead (one mark per cell, sized by
# its count); the other states' premises are still drawn one by one, so an outage or a silent
# meter is never hidden in a cell of normal ones.
MAP_POINTS_MAX = 2_000
# The grid has about this many cells across the premises' extent (its longer side).
MAP_GRID_CELLS = 100


@dataclass(frozen=True)
class MapCell:
    """A grid cell's premises of one state: where they are on average, and how many."""

    state: str
    latitude: float
    longitude: float
    premises: int


@dataclass
class PremiseMap:
    """What the operator's map draws: premises one by one, or per cell where a state has too many."""

    points: list[PremisePoint]
    cells: list[MapCell]
    counts: dict[str, int]  # premises per state, all of them (drawn one by one or in cells)
    cell_deg: Decimal | None  # the cells' size in degrees, when there are cells


def _nice_cell(span: float) -> Decimal:
    """A round cell size (1, 2 or 5 times a power of ten degrees) near span / MAP_GRID_CELLS."""
    target = max(span / MAP_GRID_CELLS, 1e-4)
    exponent = math.floor(math.log10(target))
    for step in (1, 2, 5, 10):
        if step * 10**exponent >= target:
            return Decimal(step).scaleb(exponent).normalize()
    return Decimal(10).scaleb(exponent)


def _cell_key(latitude: Decimal, longitude: Decimal, cell: Decimal) -> tuple[int, int]:
    # The same floor as the SQL below, in exact decimals: a premise falls in one cell, both ways.
    return int((latitude / cell).to_integral_value(ROUND_FLOOR)), int((longitude / cell).to_integral_value(ROUND_FLOOR))


@dataclass(frozen=True)
class _PremiseCells:
    cell: Decimal
    cells: dict[tuple[int, int], tuple[int, float, float]]  # (row, column) -> premises, mean latitude, longitude


# Master data: the cells change when premises or meters are added, so the key names the newest of each.
MAP_CELLS_KEY = "portal:operator:map-cells:{meter}:{premise}:{grid}"


def _premise_cells(accepting: QuerySet[Meter]) -> _PremiseCells:
    """Every premise with an accepting meter, counted per grid cell by PostgreSQL; cached GRID_CACHE_S.

    Two scans of the premises (their extent, which sizes the cells, then the counts), some 0.3 s at
    100,000 premises on a quiet machine, seconds on a busy one: kept in the cache under a key that
    changes with the newest meter and the newest premise (two probes of their primary keys, where
    counting the meters took 30 ms a page), so a new premise or meter shows at once, and a meter
    that stops accepting (decommissioned) leaves its cell within GRID_CACHE_S.
    """
    newest_premise = Premise.objects.aggregate(newest=Max("pk"))["newest"] or 0
    newest_meter = Meter.objects.aggregate(newest=Max("pk"))["newest"] or 0
    key = MAP_CELLS_KEY.format(meter=newest_meter, premise=newest_premise, grid=MAP_GRID_CELLS)
    found = cache.get(key)
    if isinstance(found, _PremiseCells):
        return found
    with_meter = Premise.objects.filter(pk__in=accepting.values("premise_id"))
    extent = with_meter.aggregate(
        lat_min=Min("latitude"), lat_max=Max("latitude"), lon_min=Min("longitude"), lon_max=Max("longitude")
    )
    cell = _nice_cell(max(float(extent["lat_max"] - extent["lat_min"]), float(extent["lon_max"] - extent["lon_min"])))
    per_cell = (
        with_meter.annotate(
            gy=Floor(F("latitude") / Value(cell, output_field=DecimalField())),
            gx=Floor(F("longitude") / Value(cell, output_field=DecimalField())),
        )
        .values("gy", "gx")
        .annotate(n=Count("pk"), lat=Avg("latitude"), lon=Avg("longitude"))
    )
    found = _PremiseCells(
        cell, {(int(r["gy"]), int(r["gx"])): (int(r["n"]), float(r["lat"]), float(r["lon"])) for r in per_cell}
    )
    cache.set(key, found, timeout=GRID_CACHE_S)
    return found


def premise_map(
    *,
    now: dt.datetime | None = None,
    silent_rows: Sequence[dict[str, Any]] | None = None,
    anomaly_counts: Sequence[dict[str, Any]] | None = None,
    points_max: int | None = None,
) -> PremiseMap:
    """The premises with a meter for the map, each in the worst state of its meters (see premise_states).

    Up to `points_max` (MAP_POINTS_MAX) premises in all, every premise is a point (premise_states). Above, only the
    few meters that are not normal are looked at one by one; the normal premises are counted per
    grid cell by PostgreSQL (every premise with a meter per cell, less the others; _premise_cells), so
    the page reads a few thousand rows whatever the size of the fleet.
    """
    points_max = MAP_POINTS_MAX if points_max is None else points_max
    accepting = Meter.objects.filter(premise__isnull=False, status__in=Meter.ACCEPTING_STATUSES)
    # More than points_max? Counted up to one more, not the whole fleet.
    many = accepting.order_by().values("pk")[: points_max + 1].count() > points_max
    grid = _premise_cells(accepting) if many else None
    if grid is None or sum(n for n, _lat, _lon in grid.cells.values()) <= points_max:
        points = premise_states(now=now, silent_rows=silent_rows, anomaly_counts=anomaly_counts)
        return PremiseMap(points=points, cells=[], counts=state_counts(points), cell_deg=None)
    cell = grid.cell
    troubled = _troubled_meters(now=now, silent_rows=silent_rows, anomaly_counts=anomaly_counts)
    flagged = accepting.filter(
        Q(pk__in=troubled.out | troubled.silent | troubled.anomalous) | Q(relay_state=Meter.Relay.DISCONNECTED)
    ).values_list("pk", "premise_id", "serial", "relay_state")
    worst: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for pk, premise_pk, serial, relay in flagged:
        worst[premise_pk].append((troubled.state(pk, relay), serial))
    # Plain rows, not model instances: a few thousand premises in trouble cost no object per premise.
    premises = {
        pk: (latitude, longitude, address, feeder)
        for pk, latitude, longitude, address, feeder in Premise.objects.filter(pk__in=list(worst))
        .order_by("pk")
        .values_list("pk", "latitude", "longitude", "address", "feeder__code")
    }
    flagged_points = [
        PremisePoint(
            premise_pk=pk,
            latitude=float(latitude),
            longitude=float(longitude),
            address=address,
            feeder=feeder,
            state=min((s for s, _serial in worst[pk]), key=STATES.index),
            serials=tuple(serial for _s, serial in worst[pk]),
        )
        for pk, (latitude, longitude, address, feeder) in premises.items()
    ]
    counts = dict.fromkeys(STATES, 0)
    by_state: dict[str, list[PremisePoint]] = defaultdict(list)
    for point in flagged_points:
        by_state[point.state].append(point)
        counts[point.state] += 1
    # Normal premises per cell: all of the cell's premises with a meter, less its flagged ones.
    flagged_per_cell: Counter[tuple[int, int]] = Counter(
        _cell_key(premises[p.premise_pk][0], premises[p.premise_pk][1], cell) for p in flagged_points
    )
    cells = []
    for key, (premises_in_cell, latitude, longitude) in grid.cells.items():
        normal = premises_in_cell - flagged_per_cell.get(key, 0)
        if normal > 0:
            counts["normal"] += normal
            cells.append(MapCell("normal", latitude, longitude, normal))
    points = []
    for state in STATES:
        chosen = by_state.get(state, [])
        if len(chosen) <= points_max:
            points.extend(chosen)
            continue
        grouped: dict[tuple[int, int], list[PremisePoint]] = defaultdict(list)
        for point in chosen:
            grouped[_cell_key(premises[point.premise_pk][0], premises[point.premise_pk][1], cell)].append(point)
        cells.extend(
            MapCell(
                state,
                sum(p.latitude for p in members) / len(members),
                sum(p.longitude for p in members) / len(members),
                len(members),
            )
            for members in grouped.values()
        )
    return PremiseMap(points=points, cells=cells, counts=counts, cell_deg=cell)


def state_counts(points: list[PremisePoint]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for point in points:
        counts[point.state] += 1
    return counts


def ingest_health() -> dict[str, Any]:
    """ingest.selectors.ingest_health, with readings per second since the previous look.

    The rate is the difference of the `stored` counter between two looks (kept in the cache), so
    it needs no scan of the readings; the first look after a quiet spell shows no rate.
    """
    health = ingest.ingest_health()
    snapshot = health["counters"]
    now = time.time()
    previous = cache.get(RATE_SAMPLE_KEY)
    rate = None
    if previous and now - previous["at"] >= 1.0:
        rate = max(0.0, (snapshot["stored"] - previous["stored"]) / (now - previous["at"]))
    if previous is None or now - previous["at"] >= 1.0:
        cache.set(RATE_SAMPLE_KEY, {"at": now, "stored": snapshot["stored"], "rate": rate}, timeout=3600)
    elif previous is not None:
        rate = previous.get("rate")
    return {
        **health,
        "readings_per_s": None if rate is None else round(rate, 1),
        "dead_letters_total": snapshot["dead_lettered"],
    }


def region_summary() -> dict[int, dict[str, int]]:
    """Per region: feeders, premises and active meters (one grouped query)."""
    rows = Region.objects.annotate(
        feeder_count=Count("feeders", distinct=True),
        meter_count=Count(
            "feeders__premises__meters", filter=Q(feeders__premises__meters__status=Meter.Status.ACTIVE), distinct=True
        ),
    ).values("pk", "feeder_count", "meter_count")
    return {row["pk"]: {"feeders": row["feeder_count"], "meters": row["meter_count"]} for row in rows}
