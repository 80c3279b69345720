"""The operator's forecast page and the dashboard's capacity warnings, as operators and outsiders see them."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from forecast import services
from forecast.models import CapacityWarning
from forecast.tests.helpers import evening_peak_kw, make_feeder, write_hourly_load
from mdms.core.testing import Person

URL = "/operator/forecast/"


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _figure(html: str, name: str) -> dict[str, Any]:
    match = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', html, re.S)
    assert match, name
    return dict(json.loads(match.group(1)))


@pytest.fixture
def forecast_now(db: None, mongo: Any) -> dict[str, Any]:
    """Three weeks of load up to today on a feeder rated below its peak, forecast now and 48 hours ago."""
    hot, meters = make_feeder("hot", capacity_kw="21", meters=10)
    today = timezone.localdate()
    write_hourly_load(meters, today - dt.timedelta(days=24), 25, evening_peak_kw)
    now = services.top_of_hour(timezone.now())
    with override_settings(FORECAST_CAPACITY_WARNING_SHARE=0.9):
        services.forecast_run(origin=now - dt.timedelta(hours=48))
        services.forecast_run(origin=now)
    return {"hot": hot}


def test_the_page_shows_actual_forecast_band_rating_and_the_last_48_hours(olivia: Any, forecast_now: Any) -> None:
    hot = forecast_now["hot"]
    response = client_for(olivia).get(URL, {"series": f"feeder-{hot.pk}"})
    assert response.status_code == 200
    html = response.content.decode()
    figure = _figure(html, "forecast-data")
    names = [trace["name"] for trace in figure["data"]]
    assert names[0] == "Actual" and "Forecast" in names and "80% band" in names and "Rating 21 kW" in names
    forecast = next(t for t in figure["data"] if t["name"] == "Forecast")
    assert len(forecast["y"]) == 48 and max(forecast["y"]) == pytest.approx(20.0, rel=0.01)
    actual = figure["data"][0]["y"]
    assert len(actual) == 7 * 24 and max(v for v in actual if v is not None) == pytest.approx(20.0, rel=0.01)
    backcast = _figure(html, "backcast-data")
    assert backcast["data"][0]["name"] == "Actual" and "MAPE" in backcast["layout"]["title"]["text"]
    assert 'id="backcast-mape"' in html
    assert "capacity-warning" in html and "hot" in html


def test_a_region_is_shown_by_default_without_a_rating_line(olivia: Any, forecast_now: Any) -> None:
    response = client_for(olivia).get(URL)
    assert response.status_code == 200
    names = [t["name"] for t in _figure(response.content.decode(), "forecast-data")["data"]]
    assert "Forecast" in names and not any(name.startswith("Rating") for name in names)


def test_a_bad_series_is_a_400_and_an_unknown_one_a_404(olivia: Any, forecast_now: Any) -> None:
    client = client_for(olivia)
    bad = client.get(URL, {"series": "nonsense"})
    assert bad.status_code == 400 and b"region-<id> or feeder-<id>" in bad.content
    assert client.get(URL, {"series": "feeder-999999"}).status_code == 404


def test_consumers_and_billing_staff_get_not_found(alice: Person, bill: Any, forecast_now: Any) -> None:
    hot = forecast_now["hot"]
    for user in (alice.user, bill):
        assert client_for(user).get(URL).status_code == 404
        assert client_for(user).get(URL, {"series": f"feeder-{hot.pk}"}).status_code == 404
    warning = CapacityWarning.objects.get()
    assert client_for(alice.user).post(f"/operator/forecast/warnings/{warning.pk}/acknowledge/").status_code == 404
    anonymous = Client().get(URL)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_the_dashboard_lists_the_open_warning_linking_to_the_forecast(olivia: Any, forecast_now: Any) -> None:
    hot = forecast_now["hot"]
    html = client_for(olivia).get("/operator/").content.decode()
    panel = html[html.index('id="capacity-warnings"') :]
    panel = panel[: panel.index("</section>")]
    assert f"/operator/forecast/?series=feeder-{hot.pk}" in panel
    assert "hot" in panel and "Region fc" in panel and "95% of 21 kW" in panel


def test_an_operator_acknowledges_a_warning_once(olivia: Any, forecast_now: Any) -> None:
    warning = CapacityWarning.objects.get()
    client = client_for(olivia)
    response = client.post(f"/operator/forecast/warnings/{warning.pk}/acknowledge/")
    assert response.status_code == 302
    warning.refresh_from_db()
    assert warning.acknowledged_by == olivia and warning.acknowledged_at is not None
    first = warning.acknowledged_at
    client.post(f"/operator/forecast/warnings/{warning.pk}/acknowledge/")
    warning.refresh_from_db()
    assert warning.acknowledged_at == first
    assert client.get(f"/operator/forecast/warnings/{warning.pk}/acknowledge/").status_code == 405


def test_the_page_explains_itself_before_any_forecast(olivia: Any, mongo: Any) -> None:
    make_feeder("new", capacity_kw="50", meters=1)
    response = client_for(olivia).get(URL)
    assert response.status_code == 200
    assert b"No forecast yet" in response.content
