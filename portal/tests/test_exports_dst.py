"""Both downloads ("CSV" and Green Button) cross the DST changes of Europe/Paris without holes or repeats.

An interval's start is its end minus its length in real time: on a local wall-clock datetime that
subtraction is wall-clock arithmetic, which is wrong in the hour that a DST change repeats or skips.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client
from lxml import etree

from mdms.core.localtime import local_midnight
from mdms.core.testing import make_consumer
from portal.tests.usage_data import store_days

ESPI = "{http://naesb.org/espi}"
QUARTER_HOUR_S = 900

# The day before, the day of, and the day after each change of 2026 (29 March: 23 hours; 25 October: 25 hours).
DST_CHANGES = [dt.date(2026, 3, 28), dt.date(2026, 10, 24)]


def _assert_contiguous_quarter_hours(starts: list[int], ends: list[int], first: int, last: int) -> None:
    """Every interval is 15 minutes of real time, no start repeats, and together they tile [first, last)."""
    assert [end - start for start, end in zip(starts, ends, strict=True)] == [QUARTER_HOUR_S] * len(starts)
    assert len(set(starts)) == len(starts)
    assert starts == sorted(starts)
    assert starts[0] == first
    assert ends[-1] == last
    assert all(following == end for end, following in zip(ends, starts[1:], strict=False))


@pytest.mark.django_db
@pytest.mark.parametrize("first_day", DST_CHANGES, ids=["spring", "autumn"])
def test_csv_download_has_one_row_per_real_quarter_hour_across_a_dst_change(
    client: Client, mongo: Any, settings: Any, first_day: dt.date
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    clara = make_consumer("clara")
    end_day = first_day + dt.timedelta(days=3)
    store_days(clara.meter, first_day, end_day, import_kwh=0.25)
    client.force_login(clara.user)

    response = client.get(
        f"/meters/{clara.meter.pk}/download/",
        {"start": first_day, "end": end_day - dt.timedelta(days=1), "format": "csv"},
    )

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    starts = [int(dt.datetime.fromisoformat(row["interval_start"]).timestamp()) for row in rows]
    ends = [int(dt.datetime.fromisoformat(row["interval_end"]).timestamp()) for row in rows]
    first, last = local_midnight(first_day), local_midnight(end_day)
    assert len(rows) == (last - first) // dt.timedelta(minutes=15)
    _assert_contiguous_quarter_hours(starts, ends, int(first.timestamp()), int(last.timestamp()))


@pytest.mark.django_db
@pytest.mark.parametrize("first_day", DST_CHANGES, ids=["spring", "autumn"])
def test_green_button_download_has_one_reading_per_real_quarter_hour_across_a_dst_change(
    client: Client, mongo: Any, settings: Any, first_day: dt.date
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    dora = make_consumer("dora")
    end_day = first_day + dt.timedelta(days=3)
    store_days(dora.meter, first_day, end_day, import_kwh=0.25)
    client.force_login(dora.user)

    response = client.get(
        f"/meters/{dora.meter.pk}/download/",
        {"start": first_day, "end": end_day - dt.timedelta(days=1), "format": "espi"},
    )

    assert response.status_code == 200
    feed = etree.fromstring(response.content)
    blocks = list(feed.iter(f"{ESPI}IntervalBlock"))
    readings = [reading for block in blocks for reading in block.iter(f"{ESPI}IntervalReading")]
    starts = [int(r.findtext(f"{ESPI}timePeriod/{ESPI}start") or 0) for r in readings]
    ends = [
        start + int(r.findtext(f"{ESPI}timePeriod/{ESPI}duration") or 0)
        for start, r in zip(starts, readings, strict=True)
    ]
    first, last = local_midnight(first_day), local_midnight(end_day)
    _assert_contiguous_quarter_hours(starts, ends, int(first.timestamp()), int(last.timestamp()))
    # One block per local day, whose interval covers that day's real length (23, 24 or 25 hours).
    assert [int(b.findtext(f"{ESPI}interval/{ESPI}start") or 0) for b in blocks] == [
        int(local_midnight(first_day + dt.timedelta(days=k)).timestamp()) for k in range(3)
    ]
    assert [int(b.findtext(f"{ESPI}interval/{ESPI}duration") or 0) for b in blocks] == [
        int(
            (
                local_midnight(first_day + dt.timedelta(days=k + 1)) - local_midnight(first_day + dt.timedelta(days=k))
            ).total_seconds()
        )
        for k in range(3)
    ]
