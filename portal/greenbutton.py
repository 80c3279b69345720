"""Green Button "Download My Data": one meter's intervals as an ESPI Atom feed.

The feed holds, each in an Atom entry: the UsagePoint (the meter), the LocalTimeParameters of the
utility's zone, and per direction (import, and export for solar homes) a MeterReading, its
ReadingType (Wh deltas of `interval_s` seconds) and one IntervalBlock per local day. Values are
integers in Wh as metered (before the meter multiplier, like the usage API). An estimated interval
carries ReadingQuality 9 when linearly interpolated, 8 when estimated from the meter's history (the
profile method), and an edited one 7 (replaced by a human).
Validated in portal/tests/test_greenbutton.py against the Alliance's usage.xsd and atom.xsd.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Sequence
from itertools import groupby
from zoneinfo import ZoneInfo

from lxml import etree

from billing.selectors import IntervalUsage
from mdms.core.localtime import interval_start_local
from mdms.core.models import Meter
from mdms.core.timeseries.rollups import ESTIMATE_LINEAR

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"
# A fixed namespace for the entries' UUIDs: the same meter gives the same ids in every download.
ID_NAMESPACE = uuid.UUID("6f1c2a4e-5b0d-4c1e-9a57-2f0b3c6d8e91")

QUALITY_EDITED = 7
QUALITY_ESTIMATED = 8  # "replaced by a machine computed value based on ... historical data" (profile)
QUALITY_INTERPOLATED = 9  # "computed using linear interpolation based on the readings before and after it"
# ESPI codes (usage.xsd enumerations): deltaData, electricity secondary metered, net/forward/reverse, energy, Wh.
ACCUMULATION_DELTA = 4
COMMODITY_ELECTRICITY = 1
FLOW_FORWARD = 1  # delivered to the customer (import)
FLOW_REVERSE = 19  # received from the customer (export)
KIND_ENERGY = 12
UOM_WH = 72


def _epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=32)
def local_time_parameters(zone_name: str, year: int) -> tuple[int, int, str, str]:
    """(tzOffset s, dstOffset s, dstStartRule, dstEndRule) of a zone, from its transitions in `year`.

    ESPI's DstRuleType packs a rule in 32 bits: month (bits 28-31), operator (25-27: 2 = first,
    3 = second ... 5 = fourth, 6 = fifth, 7 = last occurrence of the weekday in the month), day of month
    (20-24, unused with those operators), weekday (17-19, Monday = 1), hour (12-16) and seconds
    (0-11) of the local wall-clock time at which the change happens. A zone without DST gets zero rules.
    """
    zone = ZoneInfo(zone_name)
    moment = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    transitions: list[dt.datetime] = []
    previous = moment.astimezone(zone).utcoffset()
    while moment < end:
        moment += dt.timedelta(hours=1)
        offset = moment.astimezone(zone).utcoffset()
        if offset != previous:
            transitions.append(moment)
            previous = offset
    standard = min((dt.datetime(year, m, 1, tzinfo=zone).utcoffset() or dt.timedelta()) for m in (1, 7))
    if len(transitions) < 2:
        return int(standard.total_seconds()), 0, "00000000", "00000000"

    def rule(change: dt.datetime) -> str:
        wall = (change - dt.timedelta(seconds=1)).astimezone(zone) + dt.timedelta(seconds=1)  # time before the change
        occurrence = (wall.day - 1) // 7 + 1
        last_week = calendar.monthrange(wall.year, wall.month)[1] - wall.day < 7
        # "Last" (7), not "fifth" (6): October 2026 has no fifth Sunday, and a client that follows
        # usage.xsd would then find no end of summer time.
        operator = 7 if last_week else occurrence + 1
        seconds = wall.minute * 60 + wall.second
        value = wall.month << 28 | operator << 25 | wall.isoweekday() << 17 | wall.hour << 12 | seconds
        return f"{value:08X}"

    # In the southern hemisphere the year's first change ends DST: start is the one into DST.
    start, finish = sorted(transitions[:2], key=lambda t: t.astimezone(zone).utcoffset() == standard)
    dst = (start.astimezone(zone).utcoffset() or dt.timedelta()) - standard
    return int(standard.total_seconds()), int(dst.total_seconds()), rule(start), rule(finish)


def _quality(row: IntervalUsage) -> int:
    if row.edited:
        return QUALITY_EDITED
    return QUALITY_INTERPOLATED if row.estimate_method == ESTIMATE_LINEAR else QUALITY_ESTIMATED


class _Feed:
    def __init__(self, meter: Meter, now: dt.datetime) -> None:
        self.meter = meter
        self.updated = _utc(now)
        self.root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
        self.base = f"/espi/1_1/resource/RetailCustomer/{meter.pk}/UsagePoint/{meter.pk}"

    def uid(self, name: str) -> str:
        return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, f'{self.meter.serial}/{name}')}"

    def _sub(self, parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
        element = etree.SubElement(parent, tag)
        if text is not None:
            element.text = str(text)
        return element

    def entry(self, name: str, title: str, self_href: str, up_href: str, related: Iterable[str] = ()) -> etree._Element:
        """An Atom entry; returns its `content` element for the ESPI resource."""
        entry = self._sub(self.root, f"{{{ATOM}}}entry")
        self._sub(entry, f"{{{ATOM}}}id", self.uid(name))
        for rel, href in [("self", self_href), ("up", up_href), *(("related", r) for r in related)]:
            etree.SubElement(entry, f"{{{ATOM}}}link", rel=rel, href=href)
        self._sub(entry, f"{{{ATOM}}}title", title)
        content = self._sub(entry, f"{{{ATOM}}}content")
        self._sub(entry, f"{{{ATOM}}}published", self.updated)
        self._sub(entry, f"{{{ATOM}}}updated", self.updated)
        return content

    def espi(self, parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
        if parent.tag.startswith(f"{{{ATOM}}}"):
            element = etree.SubElement(parent, f"{{{ESPI}}}{tag}", nsmap={None: ESPI})
        else:
            element = etree.SubElement(parent, f"{{{ESPI}}}{tag}")
        if text is not None:
            element.text = str(text)
        return element


def feed(
    *, meter: Meter, intervals: Sequence[IntervalUsage], zone_name: str, start: dt.date, end: dt.date, now: dt.datetime
) -> bytes:
    """The ESPI feed of these intervals (local days start <= day < end)."""
    doc = _Feed(meter, now)
    doc._sub(doc.root, f"{{{ATOM}}}id", doc.uid(f"feed/{start}/{end}"))
    doc._sub(doc.root, f"{{{ATOM}}}title", f"Green Button usage of meter {meter.serial}, {start} to {end}")
    doc._sub(doc.root, f"{{{ATOM}}}updated", doc.updated)
    etree.SubElement(doc.root, f"{{{ATOM}}}link", rel="self", href=f"{doc.base}")

    directions = [("import", FLOW_FORWARD, "Energy imported from the grid")]
    if meter.has_solar or any(i.export_kwh for i in intervals):
        directions.append(("export", FLOW_REVERSE, "Energy exported to the grid"))
    ltp_href = "/espi/1_1/resource/LocalTimeParameters/1"

    usage_point = doc.entry(
        "usage-point",
        f"Meter {meter.serial}",
        doc.base,
        f"/espi/1_1/resource/RetailCustomer/{meter.pk}/UsagePoint",
        [f"{doc.base}/MeterReading", ltp_href],
    )
    category = doc.espi(doc.espi(usage_point, "UsagePoint"), "ServiceCategory")
    doc.espi(category, "kind", 0)  # electricity

    tz_offset, dst_offset, dst_start, dst_end = local_time_parameters(zone_name, start.year)
    parameters = doc.espi(
        doc.entry("local-time", f"Local time: {zone_name}", ltp_href, "/espi/1_1/resource/LocalTimeParameters"),
        "LocalTimeParameters",
    )
    doc.espi(parameters, "dstEndRule", dst_end)
    doc.espi(parameters, "dstOffset", dst_offset)
    doc.espi(parameters, "dstStartRule", dst_start)
    doc.espi(parameters, "tzOffset", tz_offset)

    for number, (direction, flow, title) in enumerate(directions, start=1):
        reading_href = f"{doc.base}/MeterReading/{number}"
        type_href = f"/espi/1_1/resource/ReadingType/{meter.pk}-{number}"
        doc.espi(
            doc.entry(
                f"meter-reading/{direction}",
                title,
                reading_href,
                f"{doc.base}/MeterReading",
                [f"{reading_href}/IntervalBlock", type_href],
            ),
            "MeterReading",
        )
        reading_type = doc.espi(
            doc.entry(
                f"reading-type/{direction}", f"{title}, Wh per interval", type_href, "/espi/1_1/resource/ReadingType"
            ),
            "ReadingType",
        )
        for tag, value in [
            ("accumulationBehaviour", ACCUMULATION_DELTA),
            ("commodity", COMMODITY_ELECTRICITY),
            ("flowDirection", flow),
            ("intervalLength", meter.interval_s),
            ("kind", KIND_ENERGY),
            ("powerOfTenMultiplier", 0),
            ("uom", UOM_WH),
        ]:
            doc.espi(reading_type, tag, value)

        for day, day_intervals in groupby(intervals, key=lambda i: interval_start_local(i.ts, meter.interval_s).date()):
            rows = [i for i in day_intervals if (i.import_kwh if direction == "import" else i.export_kwh) is not None]
            if not rows:
                continue
            block = doc.espi(
                doc.entry(
                    f"block/{direction}/{day}",
                    f"{title}, {day}",
                    f"{reading_href}/IntervalBlock/{day:%Y%m%d}",
                    f"{reading_href}/IntervalBlock",
                ),
                "IntervalBlock",
            )
            # Starts are UTC instants: a local datetime minus a timedelta is wall-clock arithmetic,
            # wrong in the hour a DST change skips or repeats.
            first_start = _epoch(rows[0].ts) - meter.interval_s
            interval = doc.espi(block, "interval")
            doc.espi(interval, "duration", _epoch(rows[-1].ts) - first_start)
            doc.espi(interval, "start", first_start)
            for row in rows:
                kwh = row.import_kwh if direction == "import" else row.export_kwh
                element = doc.espi(block, "IntervalReading")
                if row.edited or row.estimated:
                    quality = doc.espi(element, "ReadingQuality")
                    doc.espi(quality, "quality", _quality(row))
                period = doc.espi(element, "timePeriod")
                doc.espi(period, "duration", meter.interval_s)
                doc.espi(period, "start", _epoch(row.ts) - meter.interval_s)
                doc.espi(element, "value", round((kwh or 0.0) * 1000))
    return bytes(etree.tostring(doc.root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
