"""The forecaster alone (pure numpy): it beats seasonal naive, keeps local hours across DST, treats holidays as Sundays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from forecast import model
from ingest.simulator.load import LoadModel
from ingest.simulator.profiles import profile_for

PARIS = ZoneInfo("Europe/Paris")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=PARIS).astimezone(dt.UTC)


def _simulated_feeder(first_day: dt.date, days: int, meters: int, seed: int) -> tuple[dt.datetime, np.ndarray]:
    """Hourly net kWh of `meters` simulated households (the meter simulator's load model)."""
    start = _midnight(first_day)
    hours = int((_midnight(first_day + dt.timedelta(days=days)) - start) // dt.timedelta(hours=1))
    total = np.zeros(hours)
    for n in range(meters):
        load = LoadModel(profile_for(f"FCTEST{n:04d}", seed=seed, feeder="f1"), seed)
        for k in range(hours):
            sample = load.sample(start + dt.timedelta(hours=k + 1), 3600)
            total[k] += (sample.consumption_w - sample.production_w) / 1000.0
    return start, total


def test_forecast_beats_seasonal_naive_on_simulated_households() -> None:
    # Five autumn weeks of 40 simulated homes; forecast 48 h from each midnight of the last 10 days.
    first_day = dt.date(2026, 9, 28)
    start, values = _simulated_feeder(first_day, 35, 40, seed=11)
    calendar = model.Calendar.of(start, values.size, zone=PARIS)
    ours, naive = [], []
    for day in calendar.days[23:33]:
        origin = calendar.index(_midnight(day))
        actual = values[origin : origin + model.HORIZON_HOURS]
        ours.append(model.mape(model.forecast(calendar, values, origin), actual))
        naive.append(model.mape(model.seasonal_naive(calendar, values, origin), actual))
    assert None not in ours and None not in naive
    assert float(np.mean(ours)) < 0.8 * float(np.mean(naive)), (np.mean(ours), np.mean(naive))


def _local_pattern(calendar: model.Calendar, hours: int) -> np.ndarray:
    """A load that depends only on the local hour and weekday: 10 + local hour, +5 at weekends."""
    return np.array(
        [10.0 + calendar.col[k] + (5.0 if calendar.days[calendar.row[k]].weekday() >= 5 else 0.0) for k in range(hours)]
    )


@pytest.mark.parametrize(
    ("first_day", "change_day"),
    [(dt.date(2026, 9, 28), dt.date(2026, 10, 25)), (dt.date(2026, 3, 2), dt.date(2026, 3, 29))],
    ids=["autumn", "spring"],
)
def test_dst_weeks_keep_the_local_hour_of_week(first_day: dt.date, change_day: dt.date) -> None:
    start = _midnight(first_day)
    hours = int((_midnight(change_day + dt.timedelta(days=9)) - start) // dt.timedelta(hours=1))
    calendar = model.Calendar.of(start, hours, zone=PARIS)
    values = _local_pattern(calendar, hours)
    # Origins the day before the change, on it, and after it: every forecast hour must land on its local hour.
    for day in (change_day - dt.timedelta(days=1), change_day, change_day + dt.timedelta(days=6)):
        origin = calendar.index(_midnight(day))
        expected = values[origin : origin + model.HORIZON_HOURS]
        for config in (model.DEFAULT, *model.CANDIDATES):
            assert np.allclose(model.forecast(calendar, values, origin, config=config), expected), (day, config.name)
        assert np.allclose(model.seasonal_naive(calendar, values, origin), expected)
    # 168 UTC hours back would be an hour off for a week after the change.
    origin = calendar.index(_midnight(change_day + dt.timedelta(days=1)))
    assert not np.allclose(values[origin - 168 : origin - 120], values[origin : origin + 48])


def test_a_25_hour_day_gets_25_forecast_hours_and_a_23_hour_day_23() -> None:
    start = _midnight(dt.date(2026, 9, 28))
    hours = int((_midnight(dt.date(2026, 11, 2)) - start) // dt.timedelta(hours=1))
    calendar = model.Calendar.of(start, hours, zone=PARIS)
    values = _local_pattern(calendar, hours)
    origin = calendar.index(_midnight(dt.date(2026, 10, 25)))
    end = calendar.index(_midnight(dt.date(2026, 10, 26)))
    assert end - origin == 25
    predicted = model.forecast(calendar, values, origin, horizon=end - origin)
    # 02:00 local comes twice that night, and both hours are forecast as 02:00.
    assert predicted[2] == predicted[3] == 12.0 + 5.0


def test_a_holiday_is_forecast_as_a_sunday() -> None:
    start = _midnight(dt.date(2026, 10, 5))
    holiday = dt.date(2026, 11, 11)  # a Wednesday
    hours = int((_midnight(holiday + dt.timedelta(days=2)) - start) // dt.timedelta(hours=1))
    calendar = model.Calendar.of(start, hours, zone=PARIS, holidays=[holiday])
    values = _local_pattern(calendar, hours)
    origin = calendar.index(_midnight(holiday))
    predicted = model.forecast(calendar, values, origin, horizon=24)
    sunday = np.array([10.0 + h + 5.0 for h in range(24)])
    assert np.allclose(predicted, sunday)
    plain = model.forecast(
        calendar, values, origin, horizon=24, config=model.ModelConfig("x", holidays_as_sunday=False)
    )
    assert np.allclose(plain, sunday - 5.0)


def test_the_band_surrounds_the_forecast() -> None:
    first_day = dt.date(2026, 9, 28)
    start, values = _simulated_feeder(first_day, 35, 10, seed=3)
    calendar = model.Calendar.of(start, values.size + 48, zone=PARIS)
    padded = np.concatenate([values, np.full(48, np.nan)])
    origin = values.size
    point = model.forecast(calendar, padded, origin)
    low, high = model.band(calendar, padded, origin, point)
    assert np.isfinite(point).all()
    assert (low <= point).all() and (point <= high).all()
    assert (high - low).mean() > 0


def test_too_little_history_gives_no_forecast_rather_than_a_made_up_one() -> None:
    start = _midnight(dt.date(2026, 11, 2))
    calendar = model.Calendar.of(start, 24 * 4, zone=PARIS)
    values = np.full(24 * 4, 5.0)
    predicted = model.forecast(calendar, values, 24)  # one Monday of history, forecasting Tuesday and Wednesday
    assert np.isfinite(predicted).all()  # working days pool: Monday informs Tuesday
    sunday_start = _midnight(dt.date(2026, 11, 8))
    calendar = model.Calendar.of(sunday_start, 48, zone=PARIS)
    assert np.isnan(model.forecast(calendar, np.full(48, 5.0), 0)).all()


def test_mape_ignores_unknown_hours() -> None:
    assert model.mape(np.array([1.0, 2.0, np.nan]), np.array([2.0, np.nan, 1.0])) == pytest.approx(50.0)
    assert model.mape(np.array([np.nan]), np.array([1.0])) is None
