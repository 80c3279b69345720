"""Forecast runs and capacity warnings against the real PostgreSQL and MongoDB."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings

from forecast import services
from forecast.models import CapacityWarning, ForecastRun, ForecastSeries
from forecast.tests.helpers import evening_peak_kw, local_midnight, make_feeder, write_hourly_load
from mdms.core.timeseries import load

FIRST_DAY = dt.date(2026, 9, 28)  # a Monday
ORIGIN = local_midnight(FIRST_DAY + dt.timedelta(days=21))  # after three weeks of history

# 10 homes of evening_peak_kw peak at 2.0 kW each on working days: about 20 kW on the feeder.
PEAK_KW = 20.0


@pytest.fixture
def grid(db: None, mongo: Any) -> dict[str, Any]:
    hot, hot_meters = make_feeder("hot", capacity_kw="21", meters=10)  # 20 kW forecast > 90% of 21 kW
    cool, cool_meters = make_feeder("cool", capacity_kw="40", meters=10)  # 20 kW < 90% of 40 kW
    unrated, unrated_meters = make_feeder("unrated", capacity_kw=None, meters=5)
    write_hourly_load(hot_meters + cool_meters + unrated_meters, FIRST_DAY, 21, evening_peak_kw)
    return {"hot": hot, "cool": cool, "unrated": unrated, "hot_meters": hot_meters}


@override_settings(FORECAST_CAPACITY_WARNING_SHARE=0.9)
def test_a_warning_opens_once_for_the_feeder_forecast_past_its_rating(grid: dict[str, Any]) -> None:
    result = services.forecast_run(origin=ORIGIN)
    assert [w.feeder.code for w in result.warnings.opened] == ["hot"]
    warning = CapacityWarning.objects.get()
    assert warning.feeder == grid["hot"] and warning.is_open
    assert warning.peak_kw == pytest.approx(PEAK_KW, rel=0.01)
    assert warning.share_of_rating == pytest.approx(PEAK_KW / 21, rel=0.01)
    # The evening peak, 18:00-22:00 local time, on a working day.
    local = warning.peak_at.astimezone(local_midnight(FIRST_DAY).astimezone().tzinfo)
    assert warning.peak_at.weekday() < 5 and 16 <= local.hour <= 21

    again = services.forecast_run(origin=ORIGIN)
    assert again.warnings.opened == [] and again.warnings.closed == []
    later = services.forecast_run(origin=ORIGIN + dt.timedelta(hours=1))
    assert later.warnings.opened == [] and [w.pk for w in later.warnings.updated] == [warning.pk]
    assert CapacityWarning.objects.count() == 1
    assert ForecastRun.objects.count() == 2  # the same origin twice is one run
    assert ForecastSeries.objects.filter(run__origin=ORIGIN).count() == 4  # 3 feeders + their region


@override_settings(FORECAST_CAPACITY_WARNING_SHARE=0.9)
def test_the_warning_closes_when_a_later_forecast_no_longer_exceeds(grid: dict[str, Any]) -> None:
    services.forecast_run(origin=ORIGIN)
    # Half the load moves off the feeder for the next three weeks.
    write_hourly_load(grid["hot_meters"], FIRST_DAY + dt.timedelta(days=21), 21, evening_peak_kw, scale=0.5)
    result = services.forecast_run(origin=ORIGIN + dt.timedelta(days=21))
    assert [w.feeder.code for w in result.warnings.closed] == ["hot"]
    warning = CapacityWarning.objects.get()
    assert warning.closed_at is not None and warning.peak_kw == pytest.approx(PEAK_KW, rel=0.01)
    assert not CapacityWarning.objects.filter(closed_at__isnull=True).exists()


@override_settings(FORECAST_CAPACITY_WARNING_SHARE=0.9)
def test_an_older_origin_run_again_does_not_touch_the_warnings(grid: dict[str, Any]) -> None:
    services.forecast_run(origin=ORIGIN + dt.timedelta(hours=2))
    older = services.forecast_run(origin=ORIGIN)
    assert older.warnings.opened == older.warnings.closed == older.warnings.updated == []
    assert CapacityWarning.objects.count() == 1


@override_settings(FORECAST_CAPACITY_WARNING_SHARE=1.5)
def test_a_higher_share_raises_no_warning(grid: dict[str, Any]) -> None:
    assert services.forecast_run(origin=ORIGIN).warnings.opened == []


def test_the_stored_forecast_follows_the_daily_shape(grid: dict[str, Any]) -> None:
    services.forecast_run(origin=ORIGIN)
    series = ForecastSeries.objects.get(run__origin=ORIGIN, feeder=grid["cool"])
    expected = [10 * evening_peak_kw(ORIGIN + dt.timedelta(hours=k)) for k in range(48)]
    assert np.allclose(series.net_kw, expected, rtol=1e-3)
    assert all(
        low <= point <= high for low, point, high in zip(series.low_kw, series.net_kw, series.high_kw, strict=True)
    )
    region = ForecastSeries.objects.get(run__origin=ORIGIN, feeder__isnull=True)
    assert region.peak_kw == pytest.approx(25 * 2.0, rel=0.01) and region.meters == 25


def test_group_net_hourly_subtracts_export(db: None, mongo: Any) -> None:
    feeder, meters = make_feeder("solar", capacity_kw=None, meters=2)
    day = dt.date(2026, 6, 1)
    write_hourly_load(meters, day, 1, lambda moment: 1.5)
    rows = load.group_net_hourly(
        dict.fromkeys(meters, feeder.pk), local_midnight(day), local_midnight(day + dt.timedelta(days=1))
    )
    assert len(rows) == 24 and {row.net_kwh for row in rows} == {3.0} and {row.meters for row in rows} == {2}


@override_settings(FORECAST_CAPACITY_WARNING_SHARE=0.9)
def test_forecast_now_prints_peaks_against_ratings(grid: dict[str, Any]) -> None:
    out = StringIO()
    call_command("forecast_now", "--at", ORIGIN.isoformat(), stdout=out)
    text = out.getvalue()
    assert "Feeder hot" in text and "WARNING" in text
    hot_line = next(line for line in text.splitlines() if line.startswith("Feeder hot"))
    assert "21" in hot_line and "95%" in hot_line
    assert "1 opened" in text


def test_forecast_now_names_a_bad_date(db: None) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not an ISO date-time"):
        call_command("forecast_now", "--at", "yesterday")


def test_the_share_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from mdms import config, settings

    for bad in ("0", "2.5", "-1", "lots"):
        monkeypatch.setenv("FORECAST_CAPACITY_WARNING_SHARE", bad)
        with pytest.raises(config.ConfigError, match="FORECAST_CAPACITY_WARNING_SHARE"):
            settings._share("FORECAST_CAPACITY_WARNING_SHARE", 0.9)
    monkeypatch.setenv("FORECAST_CAPACITY_WARNING_SHARE", "0.8")
    assert settings._share("FORECAST_CAPACITY_WARNING_SHARE", 0.9) == 0.8


def test_the_catch_up_forecasts_an_hour_without_a_run_and_then_does_nothing(grid: dict[str, Any]) -> None:
    now = ORIGIN + dt.timedelta(minutes=20)
    first = services.forecast_run_if_missing(now=now)
    assert first is not None and first.run.origin == ORIGIN and first.forecasts
    assert services.forecast_run_if_missing(now=now + dt.timedelta(minutes=5)) is None
    assert ForecastRun.objects.count() == 1
    later = services.forecast_run_if_missing(now=now + dt.timedelta(hours=1))
    assert later is not None and later.run.origin == ORIGIN + dt.timedelta(hours=1)
