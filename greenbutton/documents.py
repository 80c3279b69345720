"""The Connect My Data documents: what a subscription shares, as ESPI Atom feeds and entries.

Paths are NAESB ESPI 1.1's (`/espi/1_1/resource/...`): a Subscription's UsagePoints (one per
meter), their MeterReadings (1 = import, 2 = export), IntervalBlocks (one per local day, id
YYYYMMDD) and UsageSummaries (one per bill); ReadingType and LocalTimeParameters at the top.
IntervalBlocks and UsageSummaries carry real published/updated stamps and obey the
published-min/max and updated-min/max filters; the resources that only describe (UsagePoint,
MeterReading, ReadingType, LocalTimeParameters) are always in a batch, so it stays navigable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from lxml import etree

from greenbutton import espi
from greenbutton import selectors as shared_data
from greenbutton.models import Subscription
from greenbutton.scopes import FB_COST, FB_EXPORT, FB_INTERVALS, FB_SUMMARY, EspiScope
from greenbutton.selectors import SharedMeter
from mdms.core.localtime import local_midnight, local_today

ROOT = "/espi/1_1/resource"
LTP_ID = 1


@dataclass(frozen=True)
class Filters:
    """ESPI's query parameters on time: an entry passes when each given bound holds (min inclusive, max exclusive)."""

    published_min: dt.datetime | None = None
    published_max: dt.datetime | None = None
    updated_min: dt.datetime | None = None
    updated_max: dt.datetime | None = None

    def passes(self, published: dt.datetime, updated: dt.datetime) -> bool:
        return (
            (self.published_min is None or published >= self.published_min)
            and (self.published_max is None or published < self.published_max)
            and (self.updated_min is None or updated >= self.updated_min)
            and (self.updated_max is None or updated < self.updated_max)
        )


@dataclass
class Access:
    """What the presented token may read: its subscription, the granted scope, the meters shared today."""

    subscription: Subscription
    scope: EspiScope
    meters: dict[int, SharedMeter]
    now: dt.datetime = field(default_factory=timezone.now)

    @classmethod
    def of(cls, subscription: Subscription) -> Access:
        return cls(subscription, subscription.espi_scope, shared_data.shared_meters(subscription))

    def meter(self, meter_pk: int) -> SharedMeter:
        if meter_pk not in self.meters:
            raise Http404("No such UsagePoint in this subscription")
        return self.meters[meter_pk]

    def directions(self, shared: SharedMeter) -> list[espi.Direction]:
        if not self.scope.has(FB_INTERVALS):
            return []
        exported = self.scope.has(FB_EXPORT) and shared.meter.has_solar
        return [espi.IMPORT, espi.EXPORT] if exported else [espi.IMPORT]

    def direction(self, shared: SharedMeter, number: int) -> espi.Direction:
        for direction in self.directions(shared):
            if direction.number == number:
                return direction
        raise Http404("No such MeterReading in this subscription")


class Paths:
    def __init__(self, subscription_pk: int) -> None:
        self.subscription = f"{ROOT}/Subscription/{subscription_pk}"
        self.batch = f"{ROOT}/Batch/Subscription/{subscription_pk}"
        self.usage_points = f"{self.subscription}/UsagePoint"
        self.local_time = f"{ROOT}/LocalTimeParameters/{LTP_ID}"

    def usage_point(self, meter_pk: int) -> str:
        return f"{self.usage_points}/{meter_pk}"

    def meter_reading(self, meter_pk: int, number: int | None = None) -> str:
        readings = f"{self.usage_point(meter_pk)}/MeterReading"
        return readings if number is None else f"{readings}/{number}"

    def blocks(self, meter_pk: int, number: int) -> str:
        return f"{self.meter_reading(meter_pk, number)}/IntervalBlock"

    def summaries(self, meter_pk: int) -> str:
        return f"{self.usage_point(meter_pk)}/UsageSummary"

    @staticmethod
    def reading_type(meter_pk: int, number: int) -> str:
        return f"{ROOT}/ReadingType/{meter_pk}-{number}"


def _serial_key(shared: SharedMeter, name: str) -> str:
    # The same keys as the Download My Data file (portal/greenbutton.py): one resource, one Atom id.
    return f"{shared.meter.serial}/{name}"


def _described(access: Access, shared: SharedMeter) -> tuple[dt.datetime, dt.datetime]:
    """(published, updated) of a describing resource: the meter's registration, the terms' last change."""
    published = shared.meter.created_at
    return published, max(published, access.subscription.updated_at)


def add_usage_point(root: etree._Element, access: Access, shared: SharedMeter) -> None:
    paths = Paths(access.subscription.pk)
    related = [paths.meter_reading(shared.meter.pk)] if access.directions(shared) else []
    if access.scope.has(FB_SUMMARY):
        related.append(paths.summaries(shared.meter.pk))
    espi.usage_point(
        espi.add_entry(
            root,
            key=_serial_key(shared, "usage-point"),
            title=f"Meter {shared.meter.serial}",
            self_href=paths.usage_point(shared.meter.pk),
            up_href=paths.usage_points,
            related=[*related, paths.local_time],
            published=_described(access, shared)[0],
            updated=_described(access, shared)[1],
        )
    )


def add_local_time(root: etree._Element, access: Access) -> None:
    stamp = access.subscription.created_at
    espi.local_time(
        espi.add_entry(
            root,
            key=f"local-time/{settings.TIME_ZONE}",
            title=f"Local time: {settings.TIME_ZONE}",
            self_href=Paths(access.subscription.pk).local_time,
            up_href=f"{ROOT}/LocalTimeParameters",
            published=stamp,
            updated=stamp,
        ),
        zone_name=settings.TIME_ZONE,
        year=local_today().year,
    )


def add_meter_reading(root: etree._Element, access: Access, shared: SharedMeter, direction: espi.Direction) -> None:
    paths = Paths(access.subscription.pk)
    espi.meter_reading(
        espi.add_entry(
            root,
            key=_serial_key(shared, f"meter-reading/{direction.name}"),
            title=direction.title,
            self_href=paths.meter_reading(shared.meter.pk, direction.number),
            up_href=paths.meter_reading(shared.meter.pk),
            related=[
                paths.blocks(shared.meter.pk, direction.number),
                paths.reading_type(shared.meter.pk, direction.number),
            ],
            published=_described(access, shared)[0],
            updated=_described(access, shared)[1],
        )
    )


def add_reading_type(root: etree._Element, access: Access, shared: SharedMeter, direction: espi.Direction) -> None:
    espi.reading_type(
        espi.add_entry(
            root,
            key=_serial_key(shared, f"reading-type/{direction.name}"),
            title=f"{direction.title}, Wh per interval",
            self_href=Paths.reading_type(shared.meter.pk, direction.number),
            up_href=f"{ROOT}/ReadingType",
            published=_described(access, shared)[0],
            updated=_described(access, shared)[1],
        ),
        direction=direction,
        interval_s=shared.meter.interval_s,
    )


def add_interval_blocks(
    root: etree._Element,
    access: Access,
    shared: SharedMeter,
    direction: espi.Direction,
    filters: Filters,
    *,
    only_day: dt.date | None = None,
) -> int:
    """The IntervalBlocks (one per local day with data) that pass the filters; returns how many."""
    first, end = shared.first_day, shared.end_day
    if only_day is not None:
        first, end = shared.clamp(only_day, only_day + dt.timedelta(days=1))
    stamps = shared_data.block_days(shared.meter, first, end, now=access.now)
    wanted = {day for day, stamp in stamps.items() if filters.passes(stamp.published, stamp.updated)}
    if not wanted:
        return 0
    rows = shared_data.intervals(shared.meter, min(wanted), max(wanted) + dt.timedelta(days=1))
    paths = Paths(access.subscription.pk)
    count = 0
    days = espi.days_of(rows, direction=direction, zone_name=settings.TIME_ZONE, interval_s=shared.meter.interval_s)
    for day, day_rows in days:
        if day not in wanted:
            continue
        espi.interval_block(
            espi.add_entry(
                root,
                key=_serial_key(shared, f"block/{direction.name}/{day}"),
                title=f"{direction.title}, {day}",
                self_href=f"{paths.blocks(shared.meter.pk, direction.number)}/{day:%Y%m%d}",
                up_href=paths.blocks(shared.meter.pk, direction.number),
                published=stamps[day].published,
                updated=stamps[day].updated,
            ),
            rows=day_rows,
            direction=direction,
            interval_s=shared.meter.interval_s,
        )
        count += 1
    return count


def add_usage_summaries(
    root: etree._Element, access: Access, shared: SharedMeter, filters: Filters, *, only_pk: int | None = None
) -> int:
    paths = Paths(access.subscription.pk)
    with_cost = access.scope.has(FB_COST)
    count = 0
    for bill in shared_data.bills(access.subscription, shared):
        if (only_pk is not None and bill.pk != only_pk) or not filters.passes(bill.created_at, bill.created_at):
            continue
        espi.usage_summary(
            espi.add_entry(
                root,
                key=_serial_key(shared, f"usage-summary/{bill.pk}"),
                title=f"Bill {bill.period_start} to {bill.period_end - dt.timedelta(days=1)}",
                self_href=f"{paths.summaries(shared.meter.pk)}/{bill.pk}",
                up_href=paths.summaries(shared.meter.pk),
                published=bill.created_at,
                updated=bill.created_at,
            ),
            bill=espi.BillSummary(
                period_start=local_midnight(bill.period_start),
                period_end=local_midnight(bill.period_end),
                import_kwh=bill.import_kwh,
                max_demand_kw=bill.max_demand_kw,
                max_demand_at=bill.max_demand_at,
                estimated=bill.estimated_kwh > 0,
                issued_at=bill.created_at,
                total=bill.total if with_cost else None,
                currency=bill.currency,
            ),
        )
        count += 1
    return count


def feed(access: Access, *, key: str, title: str, self_href: str) -> etree._Element:
    return espi.new_feed(
        key=f"subscription/{access.subscription.pk}/{key}", title=title, self_href=self_href, updated=access.now
    )


def batch(access: Access, filters: Filters) -> bytes:
    """Everything the subscription shares, in one feed: Batch/Subscription/{id}."""
    paths = Paths(access.subscription.pk)
    root = feed(access, key="batch", title=f"Green Button Connect: {access.subscription}", self_href=paths.batch)
    add_local_time(root, access)
    for shared in access.meters.values():
        add_usage_point(root, access, shared)
        for direction in access.directions(shared):
            add_meter_reading(root, access, shared, direction)
            add_reading_type(root, access, shared, direction)
            add_interval_blocks(root, access, shared, direction, filters)
        if access.scope.has(FB_SUMMARY):
            add_usage_summaries(root, access, shared, filters)
    return espi.document(root)


def usage_points(access: Access, *, self_href: str) -> bytes:
    root = feed(access, key="usage-points", title="Usage points", self_href=self_href)
    for shared in access.meters.values():
        add_usage_point(root, access, shared)
    return espi.document(root)


def reading_types(access: Access) -> bytes:
    root = feed(access, key="reading-types", title="Reading types", self_href=f"{ROOT}/ReadingType")
    for shared in access.meters.values():
        for direction in access.directions(shared):
            add_reading_type(root, access, shared, direction)
    return espi.document(root)


def single(root: etree._Element) -> bytes:
    """The one entry of a feed built for it, as a document of its own (a single resource is an Atom entry)."""
    entries = root.findall(f"{{{espi.ATOM}}}entry")
    if len(entries) != 1:
        raise Http404("No such resource in this subscription")
    # Serialising the entry alone carries the namespaces it inherited from the feed.
    return espi.document(etree.fromstring(etree.tostring(entries[0])))
