"""Green Button "Download My Data": one meter's intervals as an ESPI Atom feed.

The feed holds, each in an Atom entry: the UsagePoint (the meter), the LocalTimeParameters of the
utility's zone, and per direction (import, and export for solar homes) a MeterReading, its
ReadingType (Wh deltas of `interval_s` seconds) and one IntervalBlock per local day. The resources
are built by greenbutton.espi, which the Connect My Data door (greenbutton/) shares.
Validated in portal/tests/test_greenbutton.py against the Alliance's usage.xsd and atom.xsd.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from lxml import etree

from billing.selectors import IntervalUsage
from greenbutton import espi
from greenbutton.espi import local_time_parameters
from mdms.core.models import Meter

__all__ = ["feed", "local_time_parameters"]


def feed(
    *, meter: Meter, intervals: Sequence[IntervalUsage], zone_name: str, start: dt.date, end: dt.date, now: dt.datetime
) -> bytes:
    """The ESPI feed of these intervals (local days start <= day < end)."""
    base = f"/espi/1_1/resource/RetailCustomer/{meter.pk}/UsagePoint/{meter.pk}"
    root = espi.new_feed(
        key=f"{meter.serial}/feed/{start}/{end}",
        title=f"Green Button usage of meter {meter.serial}, {start} to {end}",
        self_href=base,
        updated=now,
    )
    directions = [espi.IMPORT]
    if meter.has_solar or any(i.export_kwh for i in intervals):
        directions.append(espi.EXPORT)
    ltp_href = "/espi/1_1/resource/LocalTimeParameters/1"

    def entry(**fields: Any) -> etree._Element:
        """An Atom entry of this download: every resource published and updated now."""
        return espi.add_entry(root, published=now, updated=now, **fields)

    espi.usage_point(
        entry(
            key=f"{meter.serial}/usage-point",
            title=f"Meter {meter.serial}",
            self_href=base,
            up_href=f"/espi/1_1/resource/RetailCustomer/{meter.pk}/UsagePoint",
            related=[f"{base}/MeterReading", ltp_href],
        )
    )
    espi.local_time(
        entry(
            key=f"{meter.serial}/local-time",
            title=f"Local time: {zone_name}",
            self_href=ltp_href,
            up_href="/espi/1_1/resource/LocalTimeParameters",
        ),
        zone_name=zone_name,
        year=start.year,
    )
    for number, direction in enumerate(directions, start=1):
        reading_href = f"{base}/MeterReading/{number}"
        type_href = f"/espi/1_1/resource/ReadingType/{meter.pk}-{number}"
        espi.meter_reading(
            entry(
                key=f"{meter.serial}/meter-reading/{direction.name}",
                title=direction.title,
                self_href=reading_href,
                up_href=f"{base}/MeterReading",
                related=[f"{reading_href}/IntervalBlock", type_href],
            )
        )
        espi.reading_type(
            entry(
                key=f"{meter.serial}/reading-type/{direction.name}",
                title=f"{direction.title}, Wh per interval",
                self_href=type_href,
                up_href="/espi/1_1/resource/ReadingType",
            ),
            direction=direction,
            interval_s=meter.interval_s,
        )
        for day, rows in espi.days_of(intervals, direction=direction, zone_name=zone_name, interval_s=meter.interval_s):
            espi.interval_block(
                entry(
                    key=f"{meter.serial}/block/{direction.name}/{day}",
                    title=f"{direction.title}, {day}",
                    self_href=f"{reading_href}/IntervalBlock/{day:%Y%m%d}",
                    up_href=f"{reading_href}/IntervalBlock",
                ),
                rows=rows,
                direction=direction,
                interval_s=meter.interval_s,
            )
    return espi.document(root)
