"""The operator dashboard's Plotly figures, built with portal.charts' layout so every page looks alike."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from portal.charts import Figure, empty_note, figure, layout
from portal.views.operator_data import STATE_LABELS, GridLoad, MapCell, PremisePoint

# One colour per map state; "normal" is quiet so the others stand out.
STATE_COLOURS = {
    "normal": "#1a7f37",
    "anomaly": "#b35900",
    "silent": "#8a5cf6",
    "out": "#c62828",
    "disconnected": "#5f6b7a",
}
STATE_SYMBOLS = {
    "normal": "circle",
    "anomaly": "diamond",
    "silent": "square",
    "out": "x",
    "disconnected": "circle-open",
}
REGION_COLOURS = ("#0b6bcb", "#1a7f37", "#b35900", "#8a5cf6", "#c62828", "#0e7490", "#6b7280", "#be185d")


def _colour(index: int) -> str:
    return REGION_COLOURS[index % len(REGION_COLOURS)]


def region_hourly_figure(load: GridLoad) -> Figure:
    traces = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": region.name,
            "x": [hour.isoformat() for hour, _kwh in load.region_hours.get(region.pk, [])],
            "y": [round(kwh, 2) for _hour, kwh in load.region_hours.get(region.pk, [])],
            "line": {"color": _colour(i), "shape": "hv"},
            "hovertemplate": "%{y:.1f} kW<extra>" + region.name + "</extra>",
        }
        for i, region in enumerate(load.regions)
    ]
    empty = not any(trace["x"] for trace in traces)
    return figure(
        traces,
        layout(
            "Demand by region, hourly",
            y_title="Average power (kW)",
            xaxis={"type": "date", "automargin": True},
            annotations=[empty_note("No rolled-up readings in the last days yet.")] if empty else [],
        ),
    )


def region_daily_figure(load: GridLoad) -> Figure:
    traces = [
        {
            "type": "bar",
            "name": region.name,
            "x": [day.isoformat() for day, _kwh in load.region_days.get(region.pk, [])],
            "y": [round(kwh, 1) for _day, kwh in load.region_days.get(region.pk, [])],
            "marker": {"color": _colour(i)},
            "hovertemplate": "%{y:.0f} kWh<extra>" + region.name + "</extra>",
        }
        for i, region in enumerate(load.regions)
    ]
    return figure(
        traces,
        layout(
            "Energy by region, daily",
            y_title="Energy per day (kWh)",
            barmode="stack",
            xaxis={"type": "date", "automargin": True},
        ),
    )


def utilisation_figure(load: GridLoad) -> Figure:
    """Region (rows) x local hour of day (columns): the average demand, darkest where the grid works hardest."""
    z = [
        [None if v is None else round(v, 1) for v in load.region_hour_of_day.get(r.pk, [None] * 24)]
        for r in load.regions
    ]
    return figure(
        [
            {
                "type": "heatmap",
                "x": [f"{hour:02d}:00" for hour in range(24)],
                "y": [region.name for region in load.regions],
                "z": z,
                "colorscale": "YlOrRd",
                "reversescale": True,
                "colorbar": {"title": {"text": "kW"}, "thickness": 12},
                "hovertemplate": "%{y} at %{x}: %{z:.1f} kW average<extra></extra>",
            }
        ],
        layout(
            "Utilisation: average demand by hour of day",
            y_title="Region",
            x_title="Hour of day (local)",
            hovermode="closest",
            xaxis={"title": {"text": "Hour of day (local)"}, "dtick": 3, "automargin": True},
        ),
    )


def map_figure(
    points: Sequence[PremisePoint], cells: Sequence[MapCell] = (), counts: dict[str, int] | None = None
) -> Figure:
    """Premises at their coordinates over a plain background: no tile server, so it works offline.

    Longitude is x and latitude y, with the y axis scaled by 1/cos(latitude) so distances look
    right (an equirectangular view of a small area). `cells` (operator_data.premise_map, for a fleet
    too large to draw premise by premise) are drawn under the points, one mark per grid cell and
    state, its area growing with the premises it counts; `counts` gives the legend its totals.
    """
    traces: list[dict[str, Any]] = []
    largest = max((c.premises for c in cells), default=1)
    for state in ("normal", "anomaly", "silent", "out"):
        in_cells = [c for c in cells if c.state == state]
        if not in_cells:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{STATE_LABELS[state]}, per area ({sum(c.premises for c in in_cells):,})",
                "meta": f"{state}-cells",
                "x": [round(c.longitude, 5) for c in in_cells],
                "y": [round(c.latitude, 5) for c in in_cells],
                "customdata": [c.premises for c in in_cells],
                "marker": {
                    "color": STATE_COLOURS[state],
                    "opacity": 0.45,
                    "size": [round(6 + 24 * math.sqrt(c.premises / largest), 1) for c in in_cells],
                    "line": {"width": 0},
                },
                "hovertemplate": "%{customdata:,} premises<extra>" + STATE_LABELS[state] + "</extra>",
            }
        )
    for state in ("normal", "anomaly", "silent", "out"):  # drawn last on top: outages are never hidden
        chosen = [p for p in points if p.state == state]
        total = counts[state] if counts is not None else len(chosen)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{STATE_LABELS[state]} ({total:,})",
                "meta": state,
                "x": [p.longitude for p in chosen],
                "y": [p.latitude for p in chosen],
                "text": [f"{p.address}<br>feeder {p.feeder}<br>{', '.join(p.serials)}" for p in chosen],
                "customdata": [p.premise_pk for p in chosen],
                "marker": {
                    "color": STATE_COLOURS[state],
                    "symbol": STATE_SYMBOLS[state],
                    "size": 11 if state != "normal" else 7,
                    "line": {"width": 1, "color": "#ffffff"},
                },
                "hovertemplate": "%{text}<extra>" + STATE_LABELS[state] + "</extra>",
            }
        )
    drawn = [(p.latitude, 1) for p in points] + [(c.latitude, c.premises) for c in cells]
    weight = sum(n for _lat, n in drawn)
    mean_lat = sum(lat * n for lat, n in drawn) / weight if weight else 0.0
    ratio = 1 / max(0.2, math.cos(math.radians(mean_lat)))
    empty = not points and not cells
    return figure(
        traces,
        layout(
            "Premises by state",
            y_title="Latitude (°)",
            x_title="Longitude (°)",
            hovermode="closest",
            xaxis={"title": {"text": "Longitude (°)"}, "automargin": True, "showgrid": True, "gridcolor": "#eef1f5"},
            yaxis={
                "title": {"text": "Latitude (°)"},
                "automargin": True,
                "scaleanchor": "x",
                "scaleratio": ratio,
                "showgrid": True,
                "gridcolor": "#eef1f5",
            },
            plot_bgcolor="#f8fafc",
            annotations=[empty_note("No premise with a meter yet.")] if empty else [],
        ),
    )


def _local_iso(moment: dt.datetime) -> str:
    # Plotly draws a date string's wall-clock time and ignores its offset: give it the utility's.
    return timezone.localtime(moment).isoformat()


def meter_drilldown_figure(
    readings: Sequence[dict[str, Any]], anomalies: Sequence[dict[str, Any]], *, start: dt.datetime, end: dt.datetime
) -> Figure:
    """Voltage and power of one meter over [start, end), with each anomaly marked on the reading it was found in.

    The time axis spans the range asked for, whatever the readings cover.
    """
    x = [_local_iso(r["ts"]) for r in readings]
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Voltage",
            "x": x,
            "y": [r.get("voltage_v") for r in readings],
            "line": {"color": "#0b6bcb"},
            "hovertemplate": "%{y:.1f} V<extra>voltage</extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Power",
            "x": x,
            "y": [None if r.get("power_w") is None else round(r["power_w"] / 1000, 3) for r in readings],
            "yaxis": "y2",
            "line": {"color": "#9aa5b4"},
            "hovertemplate": "%{y:.2f} kW<extra>power</extra>",
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "Anomaly",
            "x": [_local_iso(a["timestamp"]) for a in anomalies],
            "y": [(a.get("data") or {}).get("voltage_v") for a in anomalies],
            "text": [f"{a['rule']} ({a['severity']}): {', '.join(a.get('anomalies') or [])}" for a in anomalies],
            "marker": {"color": "#c62828", "size": 12, "symbol": "x"},
            "hovertemplate": "%{text}<extra>anomaly</extra>",
        },
    ]
    return figure(
        traces,
        layout(
            "Voltage and power, with anomalies",
            y_title="Voltage (V)",
            xaxis={"type": "date", "automargin": True, "range": [_local_iso(start), _local_iso(end)]},
            yaxis2={"title": {"text": "Power (kW)"}, "overlaying": "y", "side": "right", "showgrid": False},
            hovermode="closest",
            annotations=[] if readings else [empty_note("No readings from this meter in this window.")],
        ),
    )
