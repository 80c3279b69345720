"""Writes of the forecast: run a forecast of every region and feeder, keep the capacity warnings in step.

A run is keyed by its origin (the top of an hour): running it again for the same origin replaces
its series with the same values and leaves the warnings as they were, so the hourly job may run
twice, or late, with the effect of running once. Two runs at once for one origin queue on the
run's row lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from forecast import model
from forecast.history import History, SeriesKey, load_history
from forecast.models import CapacityWarning, ForecastRun, ForecastSeries

logger = logging.getLogger(__name__)

# History read for a run: the profile's weeks, the level window, and the band's 14 past origins.
HISTORY_DAYS = 7 * model.DEFAULT.weeks + 7 + model.BAND_ORIGINS + 2
# Runs older than this are deleted (the page compares with the run of 48 hours ago).
FORECAST_KEEP_DAYS = 14


def top_of_hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _rounded(values: np.ndarray) -> list[float | None]:
    return [round(float(v), 3) if np.isfinite(v) else None for v in values]


@dataclass(frozen=True)
class SeriesForecast:
    key: SeriesKey
    net_kw: np.ndarray
    low_kw: np.ndarray
    high_kw: np.ndarray
    meters: int
    history_hours: int

    @property
    def peak(self) -> tuple[float | None, int | None]:
        """The highest absolute hourly load forecast and its hour offset (None without a forecast)."""
        magnitude = np.abs(self.net_kw)
        if not np.isfinite(magnitude).any():
            return None, None
        offset = int(np.nanargmax(magnitude))
        return float(magnitude[offset]), offset


def forecast_history(history: History, *, config: model.ModelConfig = model.DEFAULT) -> list[SeriesForecast]:
    """The forecast of every series of a history from its origin (pure: no writes)."""
    horizon = history.calendar.hours - history.origin
    results = []
    for slug, values in history.series.items():
        point = model.forecast(history.calendar, values, history.origin, config=config, horizon=horizon)
        low, high = model.band(history.calendar, values, history.origin, point, config=config)
        results.append(
            SeriesForecast(
                key=history.keys[slug],
                net_kw=point,
                low_kw=low,
                high_kw=high,
                meters=history.meters[slug],
                history_hours=int(np.isfinite(values[: history.origin]).sum()),
            )
        )
    return results


@dataclass
class WarningChanges:
    opened: list[CapacityWarning] = field(default_factory=list)
    updated: list[CapacityWarning] = field(default_factory=list)
    closed: list[CapacityWarning] = field(default_factory=list)


@dataclass
class RunResult:
    run: ForecastRun
    forecasts: list[SeriesForecast]
    warnings: WarningChanges


def forecast_run(*, origin: dt.datetime | None = None, config: model.ModelConfig = model.DEFAULT) -> RunResult:
    """Forecast every region and feeder for 48 hours from `origin` (default: the current hour) and store it.

    Warnings follow only the newest run: re-running an older origin stores its forecast and
    leaves the warnings to the newer one.
    """
    started = time.monotonic()
    origin = top_of_hour(origin or timezone.now())
    history = load_history(origin=origin, days=HISTORY_DAYS, horizon=model.HORIZON_HOURS)
    forecasts = forecast_history(history, config=config)
    with transaction.atomic():
        run = _run_row(origin)
        run.model = config.name
        run.horizon_hours = model.HORIZON_HOURS
        run.computed_at = timezone.now()
        run.duration_s = round(time.monotonic() - started, 3)
        run.save()
        run.series.all().delete()
        rows = []
        for item in forecasts:
            peak_kw, offset = item.peak
            rows.append(
                ForecastSeries(
                    run=run,
                    region=item.key.region,
                    feeder=item.key.feeder,
                    net_kw=_rounded(item.net_kw),
                    low_kw=_rounded(item.low_kw),
                    high_kw=_rounded(item.high_kw),
                    peak_kw=None if peak_kw is None else round(peak_kw, 3),
                    peak_at=None if offset is None else origin + dt.timedelta(hours=offset),
                    meters=item.meters,
                    history_hours=item.history_hours,
                )
            )
        ForecastSeries.objects.bulk_create(rows)
        newest = not ForecastRun.objects.filter(origin__gt=origin).exists()
        changes = capacity_warnings_update(run=run, forecasts=forecasts) if newest else WarningChanges()
    logger.info(
        "forecast from %s: %d series, warnings opened %d, closed %d, %.2f s",
        origin.isoformat(),
        len(forecasts),
        len(changes.opened),
        len(changes.closed),
        time.monotonic() - started,
    )
    return RunResult(run=run, forecasts=forecasts, warnings=changes)


def _run_row(origin: dt.datetime) -> ForecastRun:
    """The run row for an origin, created if missing, locked until the transaction ends."""
    try:
        with transaction.atomic():
            ForecastRun.objects.get_or_create(
                origin=origin, defaults={"model": "", "computed_at": timezone.now()}
            )  # fmt: skip
    except IntegrityError:
        pass  # created meanwhile by a run for the same origin: lock it below
    return ForecastRun.objects.select_for_update().get(origin=origin)


def capacity_warnings_update(*, run: ForecastRun, forecasts: list[SeriesForecast]) -> WarningChanges:
    """Open, update or close each rated feeder's warning from this run's forecast peaks.

    A feeder warns while its forecast peak exceeds FORECAST_CAPACITY_WARNING_SHARE of its
    rating. One warning per episode: a later run that still exceeds updates the open warning
    (peak, when), one that no longer exceeds closes it. A feeder without a rating or without a
    forecast leaves its warning as it is (no evidence either way).
    """
    share = float(settings.FORECAST_CAPACITY_WARNING_SHARE)
    changes = WarningChanges()
    now = timezone.now()
    # Every open warning in one query, locked (in pk order, as any other run locks them) until the run commits.
    open_warnings = {
        warning.feeder_id: warning
        for warning in CapacityWarning.objects.select_for_update().filter(closed_at__isnull=True).order_by("pk")
    }
    for item in forecasts:
        feeder = item.key.feeder
        capacity = item.key.capacity_kw
        peak_kw, offset = item.peak
        if feeder is None or capacity is None or capacity <= 0 or peak_kw is None or offset is None:
            continue
        exceeds = peak_kw > share * capacity
        current = open_warnings.get(feeder.pk)
        peak_at = run.origin + dt.timedelta(hours=offset)
        if exceeds and current is None:
            warning = CapacityWarning(
                feeder=feeder,
                opened_at=now,
                opened_by=run,
                last_run=run,
                peak_kw=round(peak_kw, 3),
                peak_at=peak_at,
                highest_peak_kw=round(peak_kw, 3),
                capacity_kw=Decimal(str(capacity)),
                threshold_share=share,
            )
            try:
                with transaction.atomic():
                    warning.save()
            except IntegrityError:
                continue  # another run opened it a moment ago: one episode, one warning
            changes.opened.append(warning)
        elif exceeds and current is not None:
            current.last_run = run
            current.peak_kw = round(peak_kw, 3)
            current.peak_at = peak_at
            current.highest_peak_kw = max(current.highest_peak_kw, round(peak_kw, 3))
            current.capacity_kw = Decimal(str(capacity))
            current.threshold_share = share
            current.save()
            changes.updated.append(current)
        elif not exceeds and current is not None:
            current.closed_at = now
            current.last_run = run
            current.save(update_fields=["closed_at", "last_run"])
            changes.closed.append(current)
    return changes


def capacity_warning_acknowledge(*, warning: CapacityWarning, user: AbstractBaseUser) -> bool:
    """Mark an open warning as seen by an operator; False when it was acknowledged or closed already."""
    updated = CapacityWarning.objects.filter(pk=warning.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=user
    )
    return updated == 1


def forecast_run_if_missing(*, now: dt.datetime | None = None) -> RunResult | None:
    """Forecast from the current hour unless a run from it already forecast something.

    The hourly job fires once, at 7 minutes past; after a start, a restart or a first backfill of
    history this fills the gap within minutes instead of waiting for the next hour. Cheap otherwise.
    """
    origin = top_of_hour(now or timezone.now())
    if ForecastSeries.objects.filter(run__origin=origin).exists():
        return None
    return forecast_run(origin=origin)


def forecast_runs_prune(*, keep_days: int = FORECAST_KEEP_DAYS) -> int:
    """Delete runs older than keep_days (their series go with them; warnings keep their figures)."""
    deleted, _ = ForecastRun.objects.filter(origin__lt=timezone.now() - dt.timedelta(days=keep_days)).delete()
    return int(deleted)
