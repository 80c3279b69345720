"""Episodes of the statistical rule: one alarm while a meter stays unusual, not one per interval.

On the real house (bench/realdata.py) the statistical voltage rule's warnings came in hours-long
stretches of a sagging supply: 102 warnings in 4 years, on 7 days. An operator wants to hear of
such a stretch once, and to see how long it lasted. So a statistical finding opens an episode (a
warning, alerted), and a finding of the same meter within QUIET of the episode's previous one
continues it: it is stored for the record (the chart shows every flagged interval) with severity
"info", which alerts nobody, and `episode_start` naming the warning it belongs to. An episode
still going after RENEW opens a new one, so that a lasting condition stays among the operator's
active anomalies (the last 24 hours) instead of falling out of them.

The band rules (EN 50160, ANSI C84.1) keep one finding per interval: a supply outside its band is
a fact the standard counts by interval, not an opinion of a baseline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

# The rule whose findings form episodes (monitoring.detection.statistical.RULE_BY_SEVERITY["warning"]).
EPISODE_RULE = "statistical"
# A gap this long without a finding closes the episode: a sag that flickers around the threshold
# for an afternoon is one event, the same meter unusual again the next morning another.
QUIET = dt.timedelta(hours=1)
# A condition lasting longer than this is raised again (the operator pages' active window).
RENEW = dt.timedelta(hours=24)
# What a continuation is stored as: below the alerting severities (monitoring.detection.ALERTING).
CONTINUATION_SEVERITY = "info"


@dataclass(frozen=True)
class Episode:
    """An open episode as its latest finding left it: when it started, that finding's time and fields."""

    start: dt.datetime
    last: dt.datetime
    fields: frozenset[str]


def follow(ts: dt.datetime, fields: Iterable[str], episode: Episode | None) -> Episode:
    """The episode a finding at `ts` flagging `fields` belongs to, given the meter's open one (or
    None): the same episode (its start kept) when it continues it, else a new one at `ts`."""
    flagged = frozenset(fields)
    if episode is None or ts - episode.last > QUIET or ts - episode.start >= RENEW or not flagged <= episode.fields:
        return Episode(start=ts, last=ts, fields=flagged)
    return Episode(start=episode.start, last=ts, fields=flagged)
