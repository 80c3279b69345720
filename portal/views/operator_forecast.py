"""The operator's demand forecast page: 7 days of actual load, the 48-hour forecast with its band and
the feeder's rating, what we forecast for the last 48 hours against what happened, and the
capacity warnings (with an acknowledge button).

Only operators (and staff superusers) open it; anyone else gets a 404 (operator_access).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from forecast import model, selectors, services
from forecast.history import History, SeriesKey, actual_series, load_history
from forecast.models import CapacityWarning, ForecastRun, ForecastSeries
from portal.charts import Figure, empty_note, figure, layout
from portal.views.operator_access import operator_required

# The chart shows this many days of actual load before the forecast.
ACTUAL_DAYS = 7
ACTUAL_COLOUR = "#0b6bcb"
FORECAST_COLOUR = "#b35900"
BAND_COLOUR = "rgba(179, 89, 0, 0.18)"
RATING_COLOUR = "#c62828"


@dataclass(frozen=True)
class SeriesRow:
    """A row of the peaks table."""

    key: SeriesKey
    series: ForecastSeries

    @property
    def share(self) -> float | None:
        rating = self.key.capacity_kw
        if not rating or self.series.peak_kw is None:
            return None
        return self.series.peak_kw / rating

    @property
    def warns(self) -> bool:
        return self.share is not None and self.share > settings.FORECAST_CAPACITY_WARNING_SHARE


def _values(stored: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in stored], dtype=np.float64)


def _iso(moments: list[dt.datetime]) -> list[str]:
    return [m.isoformat() for m in moments]


def _hours(start: dt.datetime, count: int) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=k) for k in range(count)]


def _y(values: np.ndarray) -> list[float | None]:
    return [round(float(v), 2) if np.isfinite(v) else None for v in values]


def forecast_figure(key: SeriesKey, history: History, run: ForecastRun | None, series: ForecastSeries | None) -> Figure:
    """Actual hourly net load over ACTUAL_DAYS, the forecast and its 80% band, and the rating for a feeder."""
    first = max(0, history.origin - 24 * ACTUAL_DAYS)
    actual = actual_series(history, key.slug, first, history.origin - first)
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Actual",
            "x": _iso(_hours(history.hour(first), actual.size)),
            "y": _y(actual),
            "line": {"color": ACTUAL_COLOUR, "width": 2},
            "hovertemplate": "%{y:.1f} kW<extra>actual</extra>",
        }
    ]
    x_end = history.hour(history.origin)
    if run is not None and series is not None:
        hours = _iso(_hours(run.origin, len(series.net_kw)))
        x_end = run.origin + dt.timedelta(hours=len(series.net_kw))
        traces += [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "80% band (low)",
                "x": hours,
                "y": _y(_values(series.low_kw)),
                "line": {"width": 0, "color": BAND_COLOUR},
                "showlegend": False,
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "80% band",
                "x": hours,
                "y": _y(_values(series.high_kw)),
                "line": {"width": 0, "color": BAND_COLOUR},
                "fill": "tonexty",
                "fillcolor": BAND_COLOUR,
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Forecast",
                "x": hours,
                "y": _y(_values(series.net_kw)),
                "line": {"color": FORECAST_COLOUR, "width": 2, "dash": "dash"},
                "hovertemplate": "%{y:.1f} kW<extra>forecast</extra>",
            },
        ]
    rating = key.capacity_kw
    if rating:
        x_range = [history.hour(first).isoformat(), x_end.isoformat()]
        share = settings.FORECAST_CAPACITY_WARNING_SHARE
        traces += [
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"Rating {rating:.0f} kW",
                "x": x_range,
                "y": [rating, rating],
                "line": {"color": RATING_COLOUR, "width": 2},
                "hovertemplate": "%{y:.0f} kW<extra>rating</extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"Warning at {share:.0%} of rating",
                "x": x_range,
                "y": [rating * share, rating * share],
                "line": {"color": RATING_COLOUR, "width": 1, "dash": "dot"},
                "hovertemplate": "%{y:.0f} kW<extra>warning level</extra>",
            },
        ]
    empty = not np.isfinite(actual).any() and series is None
    return figure(
        traces,
        layout(
            f"{key.label}: last {ACTUAL_DAYS} days and the next 48 hours",
            y_title="Net load, hourly average (kW)",
            xaxis={"type": "date", "automargin": True},
            shapes=[
                {
                    "type": "line",
                    "xref": "x",
                    "yref": "paper",
                    "x0": history.hour(history.origin).isoformat(),
                    "x1": history.hour(history.origin).isoformat(),
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#5b6778", "width": 1, "dash": "dot"},
                }
            ],
            annotations=[empty_note("No rolled-up readings for this series yet.")] if empty else [],
        ),
    )


@dataclass(frozen=True)
class Backcast:
    """What the run of 48 hours ago forecast for a series, against what happened."""

    run: ForecastRun | None
    figure: Figure
    mape: float | None
    hours_compared: int


def backcast(key: SeriesKey, history: History, now_origin: dt.datetime) -> Backcast:
    run = selectors.run_at_or_before(now_origin - dt.timedelta(hours=model.HORIZON_HOURS))
    series = None
    if run is not None:
        series = selectors.series_of(run, region_pk=key.region.pk, feeder_pk=key.feeder.pk if key.feeder else None)
    if run is None or series is None:
        return Backcast(
            None,
            figure(
                [],
                layout(
                    "Forecast against actual, previous 48 hours",
                    y_title="Net load (kW)",
                    annotations=[empty_note("No forecast was made 48 hours ago yet.")],
                ),
            ),
            None,
            0,
        )
    predicted = _values(series.net_kw)
    actual = actual_series(history, key.slug, history.calendar.index(run.origin), predicted.size)
    hours = _iso(_hours(run.origin, predicted.size))
    score = model.mape(predicted, actual)
    compared = int((np.isfinite(predicted) & np.isfinite(actual)).sum())
    title = "Forecast against actual, previous 48 hours"
    if score is not None:
        title += f" (MAPE {score:.1f}%)"
    traces = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Actual",
            "x": hours,
            "y": _y(actual),
            "line": {"color": ACTUAL_COLOUR, "width": 2},
            "hovertemplate": "%{y:.1f} kW<extra>actual</extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"Forecast of {timezone.localtime(run.origin):%a %d %b %H:%M}",
            "x": hours,
            "y": _y(predicted),
            "line": {"color": FORECAST_COLOUR, "width": 2, "dash": "dash"},
            "hovertemplate": "%{y:.1f} kW<extra>forecast</extra>",
        },
    ]
    return Backcast(
        run,
        figure(traces, layout(title, y_title="Net load, hourly average (kW)", xaxis={"type": "date"})),
        score,
        compared,
    )


def _chosen(request: HttpRequest, history: History) -> SeriesKey | None:
    """The series named by ?series=region-<pk> or feeder-<pk>; the first region by default."""
    slug = request.GET.get("series", "")
    if not slug:
        return next((key for key in history.keys.values() if key.feeder is None), None)
    kind, _, pk = slug.partition("-")
    if kind not in ("region", "feeder") or not pk.isdigit():
        raise ValueError(f"series must look like region-<id> or feeder-<id>, not {slug!r}")
    key = history.keys.get(slug)
    if key is None:
        raise Http404("No such region or feeder.")
    return key


@operator_required
@require_GET
def operator_forecast(request: HttpRequest) -> HttpResponse:
    now_origin = services.top_of_hour(timezone.now())
    history = load_history(origin=now_origin, days=ACTUAL_DAYS + 3, horizon=model.HORIZON_HOURS)
    try:
        key = _chosen(request, history)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    run = selectors.latest_run()
    rows = []
    chosen_series = None
    if run is not None:
        for stored in selectors.run_series(run):
            slug = f"feeder-{stored.feeder_id}" if stored.feeder_id else f"region-{stored.region_id}"
            row_key = history.keys.get(slug)
            if row_key is not None:
                rows.append(SeriesRow(row_key, stored))
            if key is not None and row_key is not None and row_key.slug == key.slug:
                chosen_series = stored
    context: dict[str, Any] = {
        "run": run,
        "key": key,
        "keys": list(history.keys.values()),
        "rows": rows,
        "share": settings.FORECAST_CAPACITY_WARNING_SHARE,
        "warnings": list(selectors.open_capacity_warnings()),
        "recent_warnings": list(selectors.recent_capacity_warnings()),
        "model_name": model.DEFAULT.name,
    }
    if key is not None:
        past = backcast(key, history, now_origin)
        context.update(
            {
                "figures": {"forecast": forecast_figure(key, history, run, chosen_series), "backcast": past.figure},
                "backcast": past,
                "series": chosen_series,
            }
        )
    return render(request, "portal/operator/forecast.html", context)


@operator_required
@require_POST
def operator_forecast_acknowledge(request: HttpRequest, warning_pk: int) -> HttpResponse:
    warning = get_object_or_404(CapacityWarning, pk=warning_pk)
    if services.capacity_warning_acknowledge(warning=warning, user=request.user):  # type: ignore[arg-type]
        messages.success(request, f"Capacity warning for feeder {warning.feeder.code} acknowledged.")
    else:
        messages.info(request, "That warning was acknowledged already.")
    target = reverse("operator_forecast") + f"?series=feeder-{warning.feeder_id}"
    return HttpResponseRedirect(target)
