"""NAESB ESPI documents: Atom feeds and entries holding Green Button resources. No database, no clock.

Both doors build with this module: the "Download My Data" file (portal/greenbutton.py) and the
Connect My Data REST resources (greenbutton/views.py), so a resource has the same shape and the
same Atom id through either. An entry's id is a UUID derived from a stable key (the meter's serial
and the resource's name), so the same resource keeps its id in every document.

Resources: the UsagePoint (a meter), the LocalTimeParameters of the utility's zone, per direction
(import, and export for solar homes) a MeterReading, its ReadingType (Wh deltas of `interval_s`
seconds) and one IntervalBlock per local day, and a UsageSummary per bill. Interval values are
integers in Wh as metered (before the meter multiplier, like the usage API). Every interval that is
not valid carries a ReadingQuality with the ESPI number of its quality code (mdms.core.reading_quality:
9 linearly interpolated, 8 estimated from history, a reference day or by a data hub, 7 edited by a
person, 10 questionable, 17 validated); a valid one carries none and takes the ReadingType's
defaultQuality, 0, as usage.xsd says.
Validated against the Alliance's usage.xsd and atom.xsd in portal/tests/test_greenbutton.py and
greenbutton/tests/.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from zoneinfo import ZoneInfo

from lxml import etree

from billing.selectors import IntervalUsage
from mdms.core import reading_quality as reading_quality_codes

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"
# A fixed namespace for the entries' UUIDs: the same meter gives the same ids in every document.
ID_NAMESPACE = uuid.UUID("6f1c2a4e-5b0d-4c1e-9a57-2f0b3c6d8e91")

# ESPI QualityOfReading numbers: the list is mdms.core.reading_quality's.
QUALITY_VALID = reading_quality_codes.VALID.espi
QUALITY_ESTIMATED = reading_quality_codes.ESTIMATED.espi
# ESPI codes (usage.xsd enumerations): deltaData, electricity secondary metered, net/forward/reverse, energy, Wh.
ACCUMULATION_DELTA = 4
COMMODITY_ELECTRICITY = 1
FLOW_FORWARD = 1  # delivered to the customer (import)
FLOW_REVERSE = 19  # received from the customer (export)
KIND_ENERGY = 12
UOM_WH = 72
UOM_W = 38
# ESPI money is an integer in hundred-thousandths of the currency (usage.xsd, UsageSummary.billLastPeriod).
MONEY_SCALE = 100_000
# ISO 4217 numeric codes (usage.xsd Currency) of the currencies a tariff may be in.
CURRENCY_CODES = {"USD": 840, "EUR": 978, "GBP": 826, "CAD": 124, "AUD": 36, "CHF": 756, "SEK": 752, "NOK": 578}


@dataclass(frozen=True)
class Direction:
    name: str  # "import" or "export"
    number: int  # the MeterReading's id under its UsagePoint
    flow: int
    title: str


IMPORT = Direction("import", 1, FLOW_FORWARD, "Energy imported from the grid")
EXPORT = Direction("export", 2, FLOW_REVERSE, "Energy exported to the grid")
DIRECTIONS = {d.number: d for d in (IMPORT, EXPORT)}


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def atom_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_id(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, key)}"


@functools.lru_cache(maxsize=32)
def local_time_parameters(zone_name: str, year: int) -> tuple[int, int, str, str]:
    """(tzOffset s, dstOffset s, dstStartRule, dstEndRule) of a zone, from its transitions in `year`.

    ESPI's DstRuleType packs a rule in 32 bits: month (bits 28-31), operator (25-27: 2 = first,
    3 = second ... 5 = fourth, 6 = last occurrence of the weekday in the month), day of month
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


# --- Atom ------------------------------------------------------------------------------------------


def _sub(parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def new_feed(*, key: str, title: str, self_href: str, updated: dt.datetime) -> etree._Element:
    """An empty Atom feed; add entries with `add_entry(feed, ...)`."""
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    _sub(root, f"{{{ATOM}}}id", entry_id(key))
    _sub(root, f"{{{ATOM}}}title", title)
    _sub(root, f"{{{ATOM}}}updated", atom_time(updated))
    etree.SubElement(root, f"{{{ATOM}}}link", rel="self", href=self_href)
    return root


def add_entry(
    feed: etree._Element,
    *,
    key: str,
    title: str,
    self_href: str,
    up_href: str,
    related: Iterable[str] = (),
    published: dt.datetime,
    updated: dt.datetime,
) -> etree._Element:
    """An Atom entry in `feed`; returns its `content` for the ESPI resource."""
    entry = _sub(feed, f"{{{ATOM}}}entry")
    _sub(entry, f"{{{ATOM}}}id", entry_id(key))
    for rel, href in [("self", self_href), ("up", up_href), *(("related", r) for r in related)]:
        etree.SubElement(entry, f"{{{ATOM}}}link", rel=rel, href=href)
    _sub(entry, f"{{{ATOM}}}title", title)
    content = _sub(entry, f"{{{ATOM}}}content")
    _sub(entry, f"{{{ATOM}}}published", atom_time(published))
    _sub(entry, f"{{{ATOM}}}updated", atom_time(updated))
    return content


def espi(parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
    """An ESPI element; directly under an Atom `content` it declares the ESPI default namespace."""
    if parent.tag.startswith(f"{{{ATOM}}}"):
        element = etree.SubElement(parent, f"{{{ESPI}}}{tag}", nsmap={None: ESPI})
    else:
        element = etree.SubElement(parent, f"{{{ESPI}}}{tag}")
    if text is not None:
        element.text = str(text)
    return element


def document(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


# --- Resources ----------------------------------------------------------------------------------


def usage_point(content: etree._Element) -> None:
    category = espi(espi(content, "UsagePoint"), "ServiceCategory")
    espi(category, "kind", 0)  # electricity


def local_time(content: etree._Element, *, zone_name: str, year: int) -> None:
    tz_offset, dst_offset, dst_start, dst_end = local_time_parameters(zone_name, year)
    parameters = espi(content, "LocalTimeParameters")
    espi(parameters, "dstEndRule", dst_end)
    espi(parameters, "dstOffset", dst_offset)
    espi(parameters, "dstStartRule", dst_start)
    espi(parameters, "tzOffset", tz_offset)


def meter_reading(content: etree._Element) -> None:
    espi(content, "MeterReading")


def reading_type(content: etree._Element, *, direction: Direction, interval_s: int) -> None:
    resource = espi(content, "ReadingType")
    for tag, value in [
        ("accumulationBehaviour", ACCUMULATION_DELTA),
        ("commodity", COMMODITY_ELECTRICITY),
        ("defaultQuality", QUALITY_VALID),  # an IntervalReading without a ReadingQuality is valid
        ("flowDirection", direction.flow),
        ("intervalLength", interval_s),
        ("kind", KIND_ENERGY),
        ("powerOfTenMultiplier", 0),
        ("uom", UOM_WH),
    ]:
        espi(resource, tag, value)


def _kwh(row: IntervalUsage, direction: Direction) -> float | None:
    return row.import_kwh if direction is IMPORT else row.export_kwh


def reading_quality(row: IntervalUsage) -> int:
    """The ESPI QualityOfReading of an interval: its quality code's number (mdms.core.reading_quality)."""
    return row.espi_quality


def days_of(
    intervals: Sequence[IntervalUsage], *, direction: Direction, zone_name: str, interval_s: int
) -> Iterator[tuple[dt.date, list[IntervalUsage]]]:
    """The intervals with a value in this direction, by local day of their start (days without any left out)."""
    zone = ZoneInfo(zone_name)
    length = dt.timedelta(seconds=interval_s)
    # On the UTC instant: subtracting from a local wall-clock time is wrong across a DST change.
    for day, day_intervals in groupby(
        intervals, key=lambda i: (i.ts.astimezone(dt.UTC) - length).astimezone(zone).date()
    ):
        rows = [i for i in day_intervals if _kwh(i, direction) is not None]
        if rows:
            yield day, rows


def interval_block(
    content: etree._Element, *, rows: Sequence[IntervalUsage], direction: Direction, interval_s: int
) -> None:
    """One IntervalBlock of `rows` (one local day of `days_of`), a ReadingQuality on each interval that is not valid."""
    length = dt.timedelta(seconds=interval_s)
    block = espi(content, "IntervalBlock")
    first_start = rows[0].ts.astimezone(dt.UTC) - length
    interval = espi(block, "interval")
    espi(interval, "duration", epoch(rows[-1].ts) - epoch(first_start))
    espi(interval, "start", epoch(first_start))
    for row in rows:
        kwh = _kwh(row, direction)
        element = espi(block, "IntervalReading")
        if row.quality != reading_quality_codes.VALID.code:
            quality = espi(element, "ReadingQuality")
            espi(quality, "quality", reading_quality(row))
        period = espi(element, "timePeriod")
        espi(period, "duration", interval_s)
        espi(period, "start", epoch(row.ts.astimezone(dt.UTC) - length))
        espi(element, "value", round((kwh or 0.0) * 1000))


@dataclass(frozen=True)
class BillSummary:
    """What a UsageSummary tells of one bill; costs only when the subscription's function blocks allow."""

    period_start: dt.datetime  # aware instants of the local midnights
    period_end: dt.datetime
    import_kwh: Decimal
    max_demand_kw: Decimal | None
    max_demand_at: dt.datetime | None
    estimated: bool
    issued_at: dt.datetime
    total: Decimal | None = None  # None: cost not granted
    currency: str = ""


def usage_summary(content: etree._Element, *, bill: BillSummary) -> None:
    """A UsageSummary (elements in usage.xsd's order): period, cost, consumption, peak demand, quality."""
    summary = espi(content, "UsageSummary")
    period = espi(summary, "billingPeriod")
    espi(period, "duration", epoch(bill.period_end) - epoch(bill.period_start))
    espi(period, "start", epoch(bill.period_start))
    if bill.total is not None:
        espi(summary, "billLastPeriod", int(bill.total * MONEY_SCALE))
        if bill.currency in CURRENCY_CODES:
            espi(summary, "currency", CURRENCY_CODES[bill.currency])
    consumption = espi(summary, "overallConsumptionLastPeriod")
    espi(consumption, "powerOfTenMultiplier", 0)
    espi(consumption, "uom", UOM_WH)
    espi(consumption, "value", int(bill.import_kwh * 1000))
    if bill.max_demand_kw is not None:
        demand = espi(summary, "peakDemand")
        espi(demand, "powerOfTenMultiplier", 0)
        if bill.max_demand_at is not None:
            espi(demand, "timeStamp", epoch(bill.max_demand_at))
        espi(demand, "uom", UOM_W)
        espi(demand, "value", int(bill.max_demand_kw * 1000))
    espi(summary, "qualityOfReading", QUALITY_ESTIMATED if bill.estimated else QUALITY_VALID)
    espi(summary, "statusTimeStamp", epoch(bill.issued_at))
    espi(summary, "commodity", COMMODITY_ELECTRICITY)
