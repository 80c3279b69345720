"""The dashboard's capacity warnings and the forecast page in a real browser (headless Chromium).

The forecast is made by the real service over three weeks of simulated hourly load, so the chart the
operator sees is drawn from what the model stored, not from numbers written into the test.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from forecast import services
from forecast.tests.helpers import evening_peak_kw, make_feeder, write_hourly_load
from mdms.core.models import Region
from portal.tests.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]

# Per trace of the plotly figure: its name, how many points hold a value, and the length of the
# path plotly drew for it (the DOM's scatter traces follow the figure's order).
TRACES = """el => {
  const drawn = [...el.querySelectorAll('.scatterlayer .trace')];
  return el._fullData.map((trace, k) => {
    const line = drawn[k] && drawn[k].querySelector('path.js-line');
    const fill = drawn[k] && drawn[k].querySelector('path.js-fill');
    return {
      name: trace.name,
      points: trace.y.filter(v => v !== null && Number.isFinite(v)).length,
      y: trace.y.slice(0, 2),
      line: line ? (line.getAttribute('d') || '').length : 0,
      fill: fill ? (fill.getAttribute('d') || '').length : 0,
    };
  });
}"""
Y_RANGE = "el => el._fullLayout.yaxis.range"


def wobbly_evening_peak_kw(moment: dt.datetime) -> float:
    """evening_peak_kw within 5% either way, irregular from hour to hour (fixed by the hour, no seed).

    A perfectly periodic load would leave the model no errors: its 80% band would have no width and
    the backcast a MAPE of 0. The step of 2.4 radians an hour repeats in no day or week.
    """
    return evening_peak_kw(moment) * (1 + 0.05 * math.sin(moment.timestamp() / 3600 * 2.4))


def test_an_operator_follows_a_capacity_warning_from_the_dashboard_to_the_forecast_chart(
    live_server: Any, browser_page: Any, olivia: Any, mongo: Any
) -> None:
    # 10 homes peaking at 2 kW each: about 20 kW, above 90% (the default share) of 21 kW but not of 40 kW
    # (the 5% wobble keeps the peak above 19 kW).
    Region.objects.create(code="north", name="North")  # make_feeder's own name would read "Region Region fc"
    tight, tight_meters = make_feeder("tight", capacity_kw="21", meters=10, region_code="north")
    _, roomy_meters = make_feeder("roomy", capacity_kw="40", meters=10, region_code="north")
    today = timezone.localdate()
    write_hourly_load(tight_meters + roomy_meters, today - dt.timedelta(days=24), 25, wobbly_evening_peak_kw)
    now = services.top_of_hour(timezone.now())
    services.forecast_run(origin=now - dt.timedelta(hours=48))  # for the backcast chart
    result = services.forecast_run(origin=now)
    (warning,) = [*result.warnings.opened, *result.warnings.updated]
    assert warning.feeder == tight
    share = round(100 * warning.peak_kw / float(warning.capacity_kw))

    log_in(browser_page, live_server.url, "olivia", "olivia-pw")
    browser_page.click("header nav a[href='/operator/']")
    browser_page.wait_for_selector("#map-chart .main-svg")
    rows = browser_page.locator("#capacity-warnings tr.capacity-warning")
    assert rows.count() == 1
    row = rows.first
    assert row.is_visible()
    assert row.locator("a").text_content() == "tight"
    assert row.locator("td").nth(1).text_content() == "North"
    assert row.locator(".badge").text_content() == f"{share}% of 21 kW"
    assert share > 100 * settings.FORECAST_CAPACITY_WARNING_SHARE
    browser_page.wait_for_selector("#utilisation-chart .main-svg")
    screenshot(browser_page, "operator-capacity-warning")

    row.locator("a").click()
    browser_page.wait_for_selector("#forecast-chart .main-svg")
    browser_page.wait_for_selector("#backcast-chart .main-svg")
    assert browser_page.url.endswith(f"/operator/forecast/?series=feeder-{tight.pk}")
    assert browser_page.locator("#series option:checked").text_content().strip() == "Feeder tight (North)"

    traces = {t["name"]: t for t in browser_page.eval_on_selector("#forecast-chart", TRACES)}
    assert traces["Actual"]["points"] > 6 * 24 and traces["Actual"]["line"] > 0
    assert traces["Forecast"]["points"] == 48 and traces["Forecast"]["line"] > 0
    assert traces["80% band (low)"]["points"] == 48 and traces["80% band"]["points"] == 48
    # The band is filled between its edges (plotly draws a tonexty fill in the group of the trace below).
    assert traces["80% band (low)"]["fill"] + traces["80% band"]["fill"] > 0
    rating = traces["Rating 21 kW"]
    assert rating["points"] == 2 and rating["y"] == [21, 21] and rating["line"] > 0
    low, high = browser_page.eval_on_selector("#forecast-chart", Y_RANGE)
    assert low <= 21 <= high  # the rating line is inside the plotted area
    assert browser_page.locator("#capacity-warnings tr.capacity-warning").count() == 1
    assert browser_page.locator("#backcast-mape").is_visible()
    assert float(browser_page.locator("#backcast-mape").text_content().rstrip("%")) > 0  # a wobble is not foreseen
    screenshot(browser_page, "operator-forecast")
