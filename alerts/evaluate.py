"""Judging a rule: one function per kind, each returning the breaches it sees now.

The judging itself is pure (days_over, power_episodes, silence_since): plain values in, plain
values out, no clock and no database. The evaluate_* functions read what they need (daily
rollups, raw power, when the meter was last heard, the bill projection) and name each breach
with the key that makes it notify once:

| kind           | a breach is                                        | its key names          |
|----------------|----------------------------------------------------|------------------------|
| daily_kwh      | a local day (yesterday or today so far) above X kWh | the day                |
| projected_bill | the current billing period projected above Y        | the period's first day |
| power_over     | an episode above Z kW lasting N minutes or more     | the episode's start    |
| no_data        | 24 hours or more without hearing from the meter     | the last time heard    |

so a day, a period, an episode or a silence is told once, and a new episode after power dropped
back (or a new silence after the meter spoke again) is told again. A projected bill is told once
per period even if it keeps rising: one e-mail a month is what a household wants from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.db.models import Max
from django.utils import timezone

from alerts.models import AlertRule, Notification
from billing.projection import bill_projection
from mdms.core.localtime import local_midnight, local_time
from mdms.core.models import Account
from mdms.core.timeseries import rollups as rollup_store
from mdms.core.timeseries import usage_alerts as store
from mdms.core.timeseries.usage_alerts import PowerPoint

# A meter not heard from for this long is "no data for a day".
SILENCE = dt.timedelta(hours=24)
# How far back a power_over rule looks, beyond its own minutes: a day of readings (96 at 15
# minutes), so that a beat job stopped for hours still finds the episodes it missed.
POWER_LOOKBACK = dt.timedelta(hours=24)
# An episode told before is followed back at most this far (a week of 15-minute readings is 672).
POWER_CONTINUE = dt.timedelta(days=7)
# A gap in the readings up to this long does not end an episode (a late or lost reading is not
# a drop in power); a longer one does.
POWER_GAP = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Breach:
    key: str
    subject: str
    message: str
    value: float
    episode_start: dt.datetime | None = None
    episode_end: dt.datetime | None = None


@dataclass(frozen=True)
class Episode:
    """Power above a threshold from `start` (the first interval's beginning) to `end` (the last one's end)."""

    start: dt.datetime
    end: dt.datetime
    peak_kw: float

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60


def days_over(usage: Mapping[dt.date, float], threshold_kwh: float) -> list[tuple[dt.date, float]]:
    """The days whose usage is above the threshold, by day."""
    return [(day, kwh) for day, kwh in sorted(usage.items()) if kwh > threshold_kwh]


def power_episodes(
    points: Sequence[PowerPoint], threshold_kw: float, *, gap: dt.timedelta = POWER_GAP
) -> list[Episode]:
    """Runs of intervals above threshold_kw, by time: a reading at or below it ends a run, as does a gap
    longer than `gap` between one interval's end and the next one's beginning."""
    episodes: list[Episode] = []
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    peak = 0.0
    for point in sorted(points, key=lambda p: p.ts):
        begin = point.ts - dt.timedelta(seconds=point.interval_s)
        if start is not None and end is not None and (point.kw <= threshold_kw or begin - end > gap):
            episodes.append(Episode(start, end, peak))
            start = end = None
        if point.kw > threshold_kw:
            if start is None:
                start, peak = begin, point.kw
            end, peak = point.ts, max(peak, point.kw)
    if start is not None and end is not None:
        episodes.append(Episode(start, end, peak))
    return episodes


def silence_since(last_heard: dt.datetime | None, fallback: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """Since when the meter is silent, if it has been for SILENCE or more (never heard: since `fallback`)."""
    since = last_heard or fallback
    return since if now - since >= SILENCE else None


# Reading and naming.


def evaluate_daily_kwh(rule: AlertRule, account: Account, now: dt.datetime) -> list[Breach]:
    """Yesterday and today so far, from the daily rollups (today breaches as soon as it crosses)."""
    assert rule.threshold is not None
    today = local_time(now).date()
    first = max(today - dt.timedelta(days=1), local_time(rule.armed_at).date(), account.move_in_date)
    documents = rollup_store.daily_documents(
        [rule.meter_id], first, today + dt.timedelta(days=1), fields=["total_import_kwh"]
    )
    usage = {dt.date.fromisoformat(d["day"]): float(d["total_import_kwh"]) for d in documents}
    serial = rule.meter.serial
    return [
        Breach(
            key=f"{rule.pk}:daily_kwh:{day.isoformat()}",
            subject=f"Meter {serial}: {kwh:,.1f} kWh on {day:%a %d %b}, above your {rule.threshold} kWh alert",
            message=(
                f"Your meter {serial} recorded {kwh:,.1f} kWh on {day:%A %d %B %Y}"
                f"{' so far' if day == today else ''}, above the {rule.threshold} kWh a day you set as an alert."
            ),
            value=kwh,
        )
        for day, kwh in days_over(usage, float(rule.threshold))
    ]


def evaluate_projected_bill(rule: AlertRule, account: Account, now: dt.datetime) -> list[Breach]:
    """The current period's projected bill (billing.projection) against the threshold."""
    assert rule.threshold is not None
    projection = bill_projection(account=account, meter=rule.meter, now=now)
    if projection is None or projection.point <= rule.threshold:
        return []
    window, currency, last_day = projection.window, projection.currency, projection.last_day
    return [
        Breach(
            key=f"{rule.pk}:projected_bill:{window.period_start.isoformat()}",
            subject=f"Your bill to {last_day:%d %b} is heading for {projection.point} {currency}",
            message=(
                f"From your usage so far and your usual pattern, your bill for {window.billed_start:%d %B} to "
                f"{last_day:%d %B %Y} is projected at {projection.point} {currency} (likely between "
                f"{projection.low} and {projection.high} {currency}), above the {rule.threshold} {currency} "
                f"you set as an alert. {projection.days_elapsed:.0f} of {projection.days_total} days are gone, "
                f"{projection.kwh_so_far:,.0f} kWh used so far."
            ),
            value=float(projection.point),
        )
    ]


def evaluate_power_over(rule: AlertRule, account: Account, now: dt.datetime) -> list[Breach]:
    """Episodes of the last POWER_LOOKBACK that lasted the rule's minutes; none that ended before it was armed."""
    assert rule.threshold is not None and rule.minutes is not None
    start = now - POWER_LOOKBACK - dt.timedelta(minutes=rule.minutes)
    # An episode told before and still going on would start, cut by the window, at the window's
    # edge and look new: read from the last reading of it that was told, so it is seen whole.
    told_until = Notification.objects.filter(rule=rule, kind=AlertRule.Kind.POWER_OVER).aggregate(
        until=Max("episode_end")
    )["until"]
    if told_until is not None and now - POWER_CONTINUE <= told_until < start:
        start = told_until - dt.timedelta(seconds=rule.meter.interval_s)
    start = max(start, local_midnight(account.move_in_date))
    points = store.power_series(rule.meter_id, start, now, default_interval_s=rule.meter.interval_s)
    serial = rule.meter.serial
    breaches = []
    for episode in power_episodes(points, float(rule.threshold)):
        if episode.minutes < rule.minutes or episode.end < rule.armed_at:
            continue
        begin = local_time(episode.start)
        breaches.append(
            Breach(
                key=f"{rule.pk}:power_over:{episode.start.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}",
                subject=f"Meter {serial}: power above {rule.threshold} kW since {begin:%H:%M}",
                message=(
                    f"Your meter {serial} has drawn more than {rule.threshold} kW since {begin:%A %d %B %H:%M} "
                    f"({episode.minutes:.0f} minutes so far, up to {episode.peak_kw:,.1f} kW). "
                    f"Your alert is for {rule.minutes} minutes or more."
                ),
                value=episode.peak_kw,
                episode_start=episode.start,
                episode_end=episode.end,
            )
        )
    return breaches


def evaluate_no_data(rule: AlertRule, account: Account, now: dt.datetime) -> list[Breach]:
    """Silent for SILENCE or more now; the silence is named by when the meter was last heard."""
    heard = store.last_heard([rule.meter_id]).get(rule.meter_id)
    since = silence_since(heard, rule.armed_at, now)
    if since is None:
        return []
    hours = (now - since).total_seconds() / 3600
    serial = rule.meter.serial
    last = f"since {local_time(heard):%A %d %B %H:%M}" if heard else "since you set this alert"
    return [
        Breach(
            key=f"{rule.pk}:no_data:{heard.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}" if heard else f"{rule.pk}:no_data:never",
            subject=f"Meter {serial} has sent no data for {hours:.0f} hours",
            message=(
                f"We have not heard from your meter {serial} {last} ({hours:.0f} hours). "
                "Its readings may arrive late; if it stays silent, the utility will estimate your usage "
                "and you may want to check the meter's power and connection."
            ),
            value=hours,
            episode_start=since,
        )
    ]


EVALUATORS = {
    AlertRule.Kind.DAILY_KWH: evaluate_daily_kwh,
    AlertRule.Kind.PROJECTED_BILL: evaluate_projected_bill,
    AlertRule.Kind.POWER_OVER: evaluate_power_over,
    AlertRule.Kind.NO_DATA: evaluate_no_data,
}


def evaluate(rule: AlertRule, account: Account, now: dt.datetime | None = None) -> list[Breach]:
    """The breaches `rule` sees now, for the consumer's `account` at the meter's premises."""
    return EVALUATORS[AlertRule.Kind(rule.kind)](rule, account, now or timezone.now())
