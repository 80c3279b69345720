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

# The rule whose findings form episodes (monitoring.detection.statistical.RULE_BY_SEVERITY["warning"]).
EPISODE_RULE = "statistical"
# A gap this long without a finding closes the episode: a sag that flickers around the threshold
# for an afternoon is one event, the same meter unusual again the next morning another.
QUIET = dt.timedelta(hours=1)
# A condition lasting longer than this is raised again (the operator pages' active window).
RENEW = dt.timedelta(hours=24)
# What a continuation is stored as: below the alerting severities (monitoring.detection.ALERTING).
CONTINUATION_SEVERITY = "info"


def episode_start(ts: dt.datetime, previous_ts: dt.datetime | None, previous_start: dt.datetime | None) -> dt.datetime:
    """The start of the episode a finding at `ts` belongs to, given the same meter's previous
    finding of the rule (its time and its episode's start): `ts` itself when it opens one."""
    if previous_ts is None or previous_start is None:
        return ts
    if ts - previous_ts > QUIET or ts - previous_start >= RENEW:
        return ts
    return previous_start
