"""Celery tasks of the forecast: thin, they call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from forecast import services


@shared_task(name="forecast.run_hourly", ignore_result=True)
def run_hourly() -> dict[str, Any]:
    """Forecast every region and feeder from the current hour, then drop runs past keeping."""
    result = services.forecast_run()
    pruned = services.forecast_runs_prune()
    return {
        "origin": result.run.origin.isoformat(),
        "series": len(result.forecasts),
        "warnings_opened": len(result.warnings.opened),
        "warnings_closed": len(result.warnings.closed),
        "pruned": pruned,
    }


@shared_task(name="forecast.catch_up", ignore_result=True)
def catch_up() -> dict[str, Any] | None:
    """Forecast the current hour if no run has yet (after a start, a restart, a first backfill)."""
    result = services.forecast_run_if_missing()
    if result is None:
        return None
    return {"origin": result.run.origin.isoformat(), "series": len(result.forecasts)}
