"""Plotly figures built on the server as plain dicts, rendered by static/js/charts.js.

Every page puts a figure in the template with `{{ figure|json_script:"id" }}` next to
`<div class="chart" data-figure="id">`; charts.js draws it with plotly.js served from our own
static files. Building the figures here keeps titles, units and colours the same on every page
(operator and billing pages use the same helpers) and lets tests check the data without a browser.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from portal.selectors import MonthUsage, PowerPoint, UsageSummary

Figure = dict[str, Any]

# The same colours as static/css/mdms.css (--brand, --est, --ok, --muted).
IMPORT_COLOUR = "#0b6bcb"
ESTIMATED_COLOUR = "#8a5cf6"
EXPORT_COLOUR = "#1a7f37"
LAST_YEAR_COLOUR = "#9aa5b4"
EXCHANGE_COLOUR = "#b35900"
CONFIG = {"responsive": True, "displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def layout(title: str, *, y_title: str, x_title: str = "", **extra: Any) -> dict[str, Any]:
    """A layout with a title, axis titles with units, and room for a legend under the plot on phones."""
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 16}},
        "xaxis": {"title": {"text": x_title}, "automargin": True},
        "yaxis": {"title": {"text": y_title}, "automargin": True, "zeroline": True, "zerolinecolor": "#5b6778"},
        "legend": {"orientation": "h", "y": -0.2, "x": 0},
        "margin": {"l": 56, "r": 16, "t": 48, "b": 40},
        "hovermode": "x unified",
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
    }
    base.update(extra)
    return base


def figure(data: Sequence[dict[str, Any]], figure_layout: dict[str, Any]) -> Figure:
    return {"data": list(data), "layout": figure_layout, "config": CONFIG}


def _iso(day: dt.date) -> str:
    return day.isoformat()


def daily_usage_figure(summary: UsageSummary, *, solar: bool) -> Figure:
    """Daily bars: measured import, estimated import stacked on it (hatched), export below the axis."""
    x = [_iso(d.day) for d in summary.days]
    measured = [round(d.import_kwh - d.estimated_import_kwh, 3) for d in summary.days]
    estimated = [round(d.estimated_import_kwh, 3) for d in summary.days]
    traces: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "Imported (measured)",
            "x": x,
            "y": measured,
            "marker": {"color": IMPORT_COLOUR},
            "hovertemplate": "%{y:.2f} kWh<extra>measured</extra>",
        },
        {
            "type": "bar",
            "name": "Imported (estimated)",
            "x": x,
            "y": estimated,
            # overlay: white hatching over the colour (the default, replace, would hatch on transparent).
            "marker": {
                "color": ESTIMATED_COLOUR,
                "pattern": {"shape": "/", "fillmode": "overlay", "fgcolor": "#ffffff", "solidity": 0.35},
            },
            "hovertemplate": "%{y:.2f} kWh<extra>estimated</extra>",
        },
    ]
    if solar:
        traces.append(
            {
                "type": "bar",
                "name": "Exported to the grid",
                "x": x,
                "y": [-round(d.export_kwh, 3) for d in summary.days],
                "customdata": [round(d.export_kwh, 3) for d in summary.days],
                "marker": {"color": EXPORT_COLOUR},
                "hovertemplate": "%{customdata:.2f} kWh<extra>exported</extra>",
            }
        )
    # A meter exchange: a dashed vertical line at its moment, labelled with the day and both meters.
    marks: dict[str, Any] = {
        "shapes": [
            {"type": "line", "xref": "x", "yref": "paper", "x0": m.at.isoformat(timespec="minutes")[:16],
             "x1": m.at.isoformat(timespec="minutes")[:16], "y0": 0, "y1": 1,
             "line": {"color": EXCHANGE_COLOUR, "width": 2, "dash": "dash"}}
            for m in summary.exchanges
        ],
        "annotations": [
            {"xref": "x", "yref": "paper", "x": m.at.isoformat(timespec="minutes")[:16], "y": 1, "yanchor": "bottom",
             "showarrow": False, "xanchor": "left", "font": {"size": 11, "color": EXCHANGE_COLOUR},
             "text": f"Meter exchanged {m.at:%d %b %H:%M}: {m.old_serial} → {m.new_serial}"}
            for m in summary.exchanges
        ],
    } if summary.exchanges else {}  # fmt: skip
    # Titles stay short enough for a phone; the page's caption says the rest.
    return figure(
        traces,
        layout(
            "Daily energy",
            y_title="Energy per day (kWh)",
            barmode="relative",
            bargap=0.1,
            xaxis={"type": "date"},
            **marks,
        ),
    )


def monthly_figure(months: Sequence[MonthUsage], *, solar: bool) -> Figure:
    """Monthly import (and export), this year's months beside the same months last year where they exist."""
    x = [m.month.strftime("%b %Y") for m in months]
    traces: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "Imported",
            "x": x,
            "y": [round(m.import_kwh, 1) for m in months],
            "marker": {"color": IMPORT_COLOUR},
            "hovertemplate": "%{y:.1f} kWh<extra>imported</extra>",
        }
    ]
    if any(m.last_year_import_kwh is not None for m in months):
        traces.append(
            {
                "type": "bar",
                "name": "Imported, same month last year",
                "x": x,
                "y": [None if m.last_year_import_kwh is None else round(m.last_year_import_kwh, 1) for m in months],
                "marker": {"color": LAST_YEAR_COLOUR},
                "hovertemplate": "%{y:.1f} kWh<extra>last year</extra>",
            }
        )
    if solar:
        traces.append(
            {
                "type": "bar",
                "name": "Exported",
                "x": x,
                "y": [round(m.export_kwh, 1) for m in months],
                "marker": {"color": EXPORT_COLOUR},
                "hovertemplate": "%{y:.1f} kWh<extra>exported</extra>",
            }
        )
    return figure(traces, layout("Monthly energy", y_title="Energy per month (kWh)", barmode="group"))


def heatmap_figure(summary: UsageSummary) -> Figure:
    """Hour of day (rows) x day (columns): when the energy goes."""
    return figure(
        [
            {
                "type": "heatmap",
                "x": [_iso(d.day) for d in summary.days],
                "y": [f"{hour:02d}:00" for hour in range(24)],
                "z": summary.heatmap,
                "colorscale": "YlOrRd",
                "reversescale": True,  # pale for little energy, dark red for a lot
                "colorbar": {"title": {"text": "kWh"}, "thickness": 12},
                "hovertemplate": "%{x} %{y}: %{z:.2f} kWh<extra></extra>",
            }
        ],
        layout(
            "Energy by hour of day",
            y_title="Hour of day (local)",
            hovermode="closest",
            yaxis={"title": {"text": "Hour of day (local)"}, "autorange": "reversed", "dtick": 3, "automargin": True},
            xaxis={"type": "date", "automargin": True},
        ),
    )


def power_points(points: Sequence[PowerPoint]) -> dict[str, Any]:
    """Today's power as the JSON the dashboard polls: the trace's x and y, and the newest value."""
    newest = points[-1] if points else None
    return {
        "x": [p.at.isoformat() for p in points],
        "y": [round(p.power_w / 1000, 3) for p in points],
        "latest_kw": round(newest.power_w / 1000, 3) if newest else None,
        "latest_at": newest.at.isoformat() if newest else None,
    }


def today_power_figure(points: Sequence[PowerPoint], *, day_start: dt.datetime, day_end: dt.datetime) -> Figure:
    """Net power today (import above zero, export below), over the whole local day so it fills in."""
    data = power_points(points)
    return figure(
        [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Net power",
                "x": data["x"],
                "y": data["y"],
                "line": {"color": IMPORT_COLOUR, "shape": "hv"},
                "marker": {"size": 4},
                "fill": "tozeroy",
                "hovertemplate": "%{y:.2f} kW<extra></extra>",
            }
        ],
        layout(
            "Power today",
            y_title="Power (kW)",
            xaxis={"type": "date", "range": [day_start.isoformat(), day_end.isoformat()], "automargin": True},
            showlegend=False,
            annotations=[] if points else [empty_note("No reading yet today: the chart fills in as readings arrive.")],
        ),
    )


def empty_note(text: str) -> dict[str, Any]:
    """A message in the middle of an empty chart, so an empty plot explains itself."""
    return {
        "text": text,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "showarrow": False,
        "font": {"size": 14, "color": "#5b6778"},
    }
